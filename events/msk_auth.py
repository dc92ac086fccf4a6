"""MSK IAM authentication: OAUTHBEARER tokens signed with AWS credentials."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import botocore.session
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider

from events.errors import BrokerError

logger = logging.getLogger(__name__)

TokenCallback = Callable[[str | None], tuple[str, float]]


def msk_token_callback(
    region: str, credentials_provider: CredentialProvider | None = None
) -> TokenCallback:
    """Build librdkafka's ``oauth_cb``: it returns a token and its expiry.

    librdkafka calls it again before the token expires (at about 80% of its
    15-minute lifetime), so tokens are refreshed with no timer of ours.

    Args:
        region: the AWS region of the MSK cluster.
        credentials_provider: where credentials come from; the default chain
            (environment, profile, instance role) when omitted.

    Raises:
        BrokerError: from the callback, when no credentials can be found.
    """

    def oauth_cb(_config: str | None) -> tuple[str, float]:
        if credentials_provider is not None:
            token, expiry_ms = (
                MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
                    region, credentials_provider
                )
            )
        else:
            if botocore.session.Session().get_credentials() is None:
                raise BrokerError(
                    "no AWS credentials found for MSK IAM auth; set AWS_* "
                    "variables, a profile or an instance role"
                )
            token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        logger.info(
            "msk token refreshed region=%s expires_in_s=%.0f",
            region,
            expiry_ms / 1000 - time.time(),
        )
        return token, expiry_ms / 1000

    return oauth_cb
