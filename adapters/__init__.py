"""Source adapters: pure parsers from webhook payloads to normalised domain alerts."""

from adapters import alertmanager, zabbix

PARSERS = {
    "alertmanager": alertmanager.parse,
    "zabbix": zabbix.parse,
}
