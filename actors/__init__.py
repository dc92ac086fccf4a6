"""Ray actors: the broker keeper, match engines and the robot pool."""

from actors.broker_keeper import BrokerKeeper, backbone_address

__all__ = ["BrokerKeeper", "backbone_address"]
