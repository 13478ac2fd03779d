"""Zabbix API client (pyzabbix): close or acknowledge problems the bridge has resolved.

Authentication is an API token. pyzabbix detects the server version first and sends the
token as `Authorization: Bearer` from 6.4, or in the JSON-RPC `auth` member before 6.4;
7.2 removed `auth`, so version detection must stay on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import requests
from pyzabbix.api import ZabbixAPI, ZabbixAPIException

log = logging.getLogger(__name__)

# event.acknowledge action bits (Zabbix API reference).
CLOSE = 1
ACKNOWLEDGE = 2
ADD_MESSAGE = 4
MANUAL_CLOSE_FORBIDDEN = "does not allow manual closing"


class ZabbixApiError(Exception):
    """A Zabbix API call failed; `retryable` when the server could not be reached or erred."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass
class CloseReport:
    """What happened to each event: closed, or acknowledged because manual close is forbidden."""

    closed: list[str] = field(default_factory=list)
    acknowledged_only: list[str] = field(default_factory=list)


# The API methods the client calls and what each call can come to, by the names its metrics carry.
METHODS = ("event.acknowledge",)
OUTCOMES = ("success", "unreachable", "api_error")


class ApiToken(Protocol):
    @property
    def value(self) -> str: ...


class ZabbixSettings(Protocol):
    """What `ZabbixClient.from_settings` reads of the bridge's settings (a protocol: the bridge's
    settings read the sources' registry, so adapters must not import them)."""

    @property
    def zabbix_url(self) -> str | None: ...

    @property
    def zabbix_api_token(self) -> ApiToken | None: ...

    @property
    def zabbix_timeout_seconds(self) -> float: ...


class ZabbixClient:
    """One Zabbix frontend's API."""

    def __init__(
        self,
        url: str,
        api_token: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        observe: Callable[[str, str], None] | None = None,
    ) -> None:
        self.url = url
        # Called with (method, outcome) after every call: the bridge's metrics.
        self._observe = observe or (lambda method, outcome: None)
        self._token = api_token
        self.timeout = timeout
        self.session = session or requests.Session()
        self._api: ZabbixAPI | None = None

    @classmethod
    def from_settings(
        cls, settings: ZabbixSettings, observe: Callable[[str, str], None] | None = None
    ) -> ZabbixClient | None:
        if settings.zabbix_url is None or settings.zabbix_api_token is None:
            return None
        return cls(
            settings.zabbix_url, settings.zabbix_api_token.value, settings.zabbix_timeout_seconds, observe=observe
        )

    def __repr__(self) -> str:
        return f"ZabbixClient({self.url!r})"

    def _connected(self) -> ZabbixAPI:
        if self._api is None:
            self.session.verify = True
            api = ZabbixAPI(self.url, session=self.session, timeout=self.timeout, detect_version=True)
            try:
                api.login(api_token=self._token)
            except (requests.RequestException, ZabbixAPIException) as exc:
                raise ZabbixApiError(f"cannot reach the Zabbix API at {self.url}: {type(exc).__name__}", True) from exc
            self._api = api
        return self._api

    def _acknowledge(self, event_ids: Sequence[str], action: int, message: str) -> None:
        """event.acknowledge (https://www.zabbix.com/documentation/6.0/en/manual/api/reference/event/acknowledge)."""
        try:
            self._connected().event.acknowledge(eventids=list(event_ids), action=action, message=message)
        except requests.RequestException as exc:
            self._observe("event.acknowledge", "unreachable")
            raise ZabbixApiError(f"Zabbix API request failed: {type(exc).__name__}", True) from exc
        except ZabbixAPIException:
            self._observe("event.acknowledge", "api_error")
            raise
        self._observe("event.acknowledge", "success")

    def close_problems(self, event_ids: Sequence[str], message: str) -> CloseReport:
        """Close problems with a message; where a trigger forbids manual close, acknowledge with a message.

        Raises:
            ZabbixApiError: the server cannot be reached or refuses for another reason.
        """
        report = CloseReport()
        try:
            self._acknowledge(event_ids, CLOSE | ADD_MESSAGE, message)
            report.closed.extend(event_ids)
            return report
        except ZabbixAPIException as exc:
            if MANUAL_CLOSE_FORBIDDEN not in str(exc):
                raise ZabbixApiError(f"Zabbix refused event.acknowledge: {exc}", False) from exc
        # One trigger forbids manual close and the batch failed as a whole: go event by event.
        for event_id in event_ids:
            try:
                self._acknowledge([event_id], CLOSE | ADD_MESSAGE, message)
                report.closed.append(event_id)
            except ZabbixAPIException as exc:
                if MANUAL_CLOSE_FORBIDDEN not in str(exc):
                    raise ZabbixApiError(f"Zabbix refused event.acknowledge: {exc}", False) from exc
                self._acknowledge(
                    [event_id],
                    ACKNOWLEDGE | ADD_MESSAGE,
                    f"{message} (the trigger does not allow manual close; acknowledged instead)",
                )
                report.acknowledged_only.append(event_id)
        return report
