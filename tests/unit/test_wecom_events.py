"""Parsing WeCom's documented callback payloads (fixtures from document/path/92130, 92277, 96361)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from qunflow.connectors.wecom.events import envelope_encrypt, parse_event
from qunflow.errors import InvalidInput

FIXTURES = Path(__file__).parent.parent / "fixtures" / "wecom"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_add_external_contact_carries_state_and_welcome_code() -> None:
    event = parse_event(fixture("add_external_contact.xml"))
    assert (event.event, event.change_type) == ("change_external_contact", "add_external_contact")
    assert event.user_id == "zhangsan"
    assert event.external_user_id == "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA"
    assert event.state == "teststate"
    assert event.welcome_code == "WELCOMECODE"
    assert event.create_time == datetime(2014, 6, 24, 11, 48, 33)  # 1403610513 as naive UTC
    assert not event.ignored


def test_add_member_reads_the_item_list_and_scenes() -> None:
    event = parse_event(fixture("change_external_chat_add_member.xml"))
    assert (event.event, event.change_type, event.update_detail) == ("change_external_chat", "update", "add_member")
    assert event.chat_id == "wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ"
    assert (event.join_scene, event.quit_scene, event.mem_change_cnt) == (3, 0, 2)
    assert event.mem_change_list == ("wmJack", "wmRose")
    assert event.extra["CurMemVer"] == "71217227bbd112ecfe3a49c482195cb4"


def test_del_member_reads_the_older_comma_separated_list() -> None:
    event = parse_event(fixture("change_external_chat_del_member.xml"))
    assert event.update_detail == "del_member"
    assert event.mem_change_list == ("wmJack",)


def test_member_change_without_list_is_none_not_empty() -> None:
    xml = fixture("change_external_chat_del_member.xml").replace(
        b"<MemChangeList><![CDATA[wmJack]]></MemChangeList>", b"")
    assert parse_event(xml).mem_change_list is None


def test_del_external_contact_is_parsed_and_handled() -> None:
    event = parse_event(fixture("del_external_contact.xml"))
    assert event.change_type == "del_external_contact"
    assert event.extra["Source"] == "DELETE_BY_TRANSFER"
    assert not event.ignored


def test_unknown_event_is_ignored() -> None:
    event = parse_event(b"<xml><CreateTime>1</CreateTime><Event><![CDATA[change_external_tag]]></Event>"
                        b"<ChangeType><![CDATA[create]]></ChangeType></xml>")
    assert event.ignored


def test_envelope_gives_the_ciphertext() -> None:
    assert envelope_encrypt(fixture("envelope.xml")).startswith("Kl7kjoSf6DMD1zh7")


@pytest.mark.parametrize("body", [b"", b"<xml>", b"not xml", b"<xml><ToUserName>x</ToUserName></xml>",
                                  b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'])
def test_malformed_or_hostile_envelope_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        envelope_encrypt(body)


@pytest.mark.parametrize("xml", [b"<xml><Event>x</Event></xml>", b"<xml><CreateTime>soon</CreateTime></xml>",
                                 b"<xml><CreateTime>1</CreateTime><JoinScene>x</JoinScene></xml>"])
def test_event_without_a_usable_time_or_number_is_invalid_input(xml: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_event(xml)
