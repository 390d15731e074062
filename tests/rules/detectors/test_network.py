"""Network family: IP addresses in every written form, MAC addresses; loopback is not a person."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import DetectorSettings, scan_text

DEFAULTS = DetectorSettings.default()


def spans(text: str, detector: str) -> list[str]:
    return [text[f.start : f.end] for f in scan_text(text, DEFAULTS, detectors=(detector,))]


IPS = [
    ("ipv4", "peer 10.1.2.3 joined", "10.1.2.3"),
    ("ipv4_port", "peer 203.0.113.7:443 joined", "203.0.113.7"),
    ("ipv4_zero_padded", "peer 010.001.002.003 joined", "010.001.002.003"),
    ("ipv4_decimal_host", "GET http://3232235777/x", "3232235777"),
    ("ipv4_hex_host", "GET http://0xc0a80101/x", "0xc0a80101"),
    ("hostname_aws", "node ip-10-1-2-3 ready", "10-1-2-3"),
    ("hostname_domain", "node host-192-168-1-20.example.net ready", "192-168-1-20"),
    ("hostname_nip", "via 10-1-2-3.nip.io", "10-1-2-3"),
    (
        "ipv6_full",
        "peer 2001:0db8:85a3:0000:0000:8a2e:0370:7334 x",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    ),
    ("ipv6_compressed", "peer 2001:db8::8a2e:370:7334 x", "2001:db8::8a2e:370:7334"),
    ("ipv6_prefix", "route 2001:db8:abcd::/48 added", "2001:db8:abcd::/48"),
    ("ipv6_host_prefix", "addr 2001:db8::1/64 up", "2001:db8::1/64"),
    ("ipv6_zone", "peer fe80::1%eth0 x", "fe80::1%eth0"),
    ("ipv6_mapped", "peer ::ffff:192.0.2.1 x", "::ffff:192.0.2.1"),
    ("ipv6_bracketed_port", "GET http://[2001:db8::1]:8080/", "2001:db8::1"),
    ("zero_width_inside", "peer 10.1\u200b.2.3 x", "10.1\u200b.2.3"),
]


@pytest.mark.parametrize(("text", "ip"), [c[1:] for c in IPS], ids=[c[0] for c in IPS])
def test_ip_found(text: str, ip: str) -> None:
    assert spans(text, "ip_address") == [ip]


IP_MISSES = [
    ("loopback_port", "listening on 127.0.0.1:9001"),
    ("loopback_v6", "bound to ::1 port 9001"),
    ("loopback_v6_bracketed", "GET http://[::1]:9001/health"),
    ("unspecified", "bind 0.0.0.0:8080"),
    ("netmask", "mask 255.255.255.0"),
    ("broadcast", "to 255.255.255.255"),
    ("multicast", "mdns 224.0.0.251"),
    ("date_dashes", "on 2026-11-26"),
    ("dashed_version", "build 1-2-3-4"),
    ("cpp_scope", "at Decoder::feed(buffer)"),
    ("time", "at 09:00:00"),
    ("mac_is_not_ipv6", "mac 00:1a:2b:3c:4d:5e"),
    ("bare_number", "bytes 3232235777 sent"),
]


@pytest.mark.parametrize("text", [c[1] for c in IP_MISSES], ids=[c[0] for c in IP_MISSES])
def test_ip_near_misses(text: str) -> None:
    assert spans(text, "ip_address") == []


MACS = [
    ("colons", "wifi 00:1a:2b:3c:4d:5e joined", "00:1a:2b:3c:4d:5e"),
    ("dashes_upper", "nic 00-1A-2B-3C-4D-5E up", "00-1A-2B-3C-4D-5E"),
    ("cisco_dotted", "port 001a.2b3c.4d5e learned", "001a.2b3c.4d5e"),
]


@pytest.mark.parametrize(("text", "mac"), [c[1:] for c in MACS], ids=[c[0] for c in MACS])
def test_mac_found(text: str, mac: str) -> None:
    assert spans(text, "mac_address") == [mac]


MAC_MISSES = [
    ("broadcast", "to ff:ff:ff:ff:ff:ff"),
    ("zero", "mac 00:00:00:00:00:00"),
    ("time", "at 12:34:56"),
    ("dotted_digits", "build 2024.1101.1200"),
    ("ipv6", "peer 2001:db8::8a2e:370:7334"),
    ("uuid", "id 123e4567-e89b-12d3-a456-426614174000"),
]


@pytest.mark.parametrize("text", [c[1] for c in MAC_MISSES], ids=[c[0] for c in MAC_MISSES])
def test_mac_near_misses(text: str) -> None:
    assert spans(text, "mac_address") == []
