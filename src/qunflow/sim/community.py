"""The demo community: channels of different quality, groups in every tier, entry points, spend."""

from __future__ import annotations

from dataclasses import dataclass

from qunflow.services import catalog
from qunflow.workspace import Workspace


@dataclass(frozen=True)
class ChannelProfile:
    """How people from one channel behave: volume, cost and quality."""

    key: str
    kind: str
    name: str
    visitors_per_day: float
    spend_per_day: float
    gate_pass: float  # share of visitors who pass the gate
    join: float  # share of gate passes who open the invite
    activity: float  # daily chance to write on day 1, decaying afterwards
    buyer: float  # chance to order within 30 days
    stage_weights: tuple[float, float, float]  # buying / learning / browsing


CHANNELS = (
    # The costliest channel per acquisition, by design, yet within the doctor's 3x of the others' median: the
    # demo is a workspace set up as the seed says, so `qunflow doctor` finds nothing to fix on it.
    ChannelProfile("douyin-ads", "ad", "Douyin ads 抖音投放", 45, 300, 0.45, 0.70, 0.35, 0.05, (0.15, 0.35, 0.50)),
    ChannelProfile("xhs-notes", "content", "Xiaohongshu notes 小红书笔记", 24, 200, 0.60, 0.80, 0.55, 0.10,
                   (0.25, 0.55, 0.20)),
    ChannelProfile("website", "website", "Website QR 官网二维码", 16, 0, 0.70, 0.85, 0.65, 0.16, (0.40, 0.45, 0.15)),
    ChannelProfile("expo", "offline", "Offline expo 线下展会", 6, 300, 0.80, 0.90, 0.70, 0.20, (0.45, 0.45, 0.10)),
)
REFERRAL = ChannelProfile("referral", "referral", "Friend invites 好友邀请", 0, 0, 0.75, 0.85, 0.60, 0.14,
                          (0.35, 0.50, 0.15))

# Room for the default six weeks in every tier (the doctor warns below 10% of a tier's seats left).
GROUPS = (("newbie-1", "newbie", 400), ("newbie-2", "newbie", 400), ("interest-1", "interest", 300),
          ("interest-2", "interest", 300), ("interest-3", "interest", 300), ("interest-4", "interest", 300),
          ("core-1", "core", 150), ("core-2", "core", 150), ("core-3", "core", 150), ("core-4", "core", 150),
          ("broadcast-1", "broadcast", 2000))


def entry_code(channel: str) -> str:
    return f"{channel}-main"


def build(ws: Workspace) -> None:
    catalog.add_gate(ws, "seed")
    for key, tier, capacity in GROUPS:
        catalog.add_group(ws, key, tier, capacity, name=f"Demo {key}")
    for profile in (*CHANNELS, REFERRAL):
        catalog.add_channel(ws, profile.key, profile.kind, profile.name)
        catalog.add_campaign(ws, f"{profile.key}-launch", profile.key, "Launch")
        catalog.add_entry_point(ws, entry_code(profile.key), profile.key, target_tier="newbie", gate="seed",
                                campaign=f"{profile.key}-launch")
