"""`qunflow connect wecom`: check the corp id and 客户联系 secret, then save [platforms.wecom]."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from qunflow.cli.common import WorkspaceOption, console, workspace
from qunflow.connectors.registry import settings_refusal


def connect_wecom(
    corp_id: Annotated[str, typer.Option("--corp-id", help="The corp id (我的企业 → 企业信息).")],
    secret: Annotated[str, typer.Option("--secret", help="The 客户联系 secret (客户联系 → API).")],
    callback_token: Annotated[str, typer.Option("--callback-token", help="The callback Token.")],
    aes_key: Annotated[str, typer.Option("--aes-key", help="The callback EncodingAESKey (43 characters).")],
    api_base: Annotated[str, typer.Option("--api-base", help="The WeCom API server.")]
    = "https://qyapi.weixin.qq.com",
    staff: Annotated[list[str] | None, typer.Option(
        "--staff", help="A staff userid people add through 联系我 codes (repeat for more).")] = None,
    entry_mode: Annotated[str, typer.Option(
        "--entry-mode", help="contact (联系我 codes, the default) or group (customer-group join codes).")]
    = "contact",
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Connect a WeCom company: checks the secret, saves \\[platforms.wecom], prints the callback set-up."""
    from qunflow.connectors.base import Host
    from qunflow.connectors.wecom.connector import WeComConnector
    from qunflow.connectors.wecom.settings import WeComSettings
    from qunflow.settings import save_platform_section

    ws = workspace(workspace_dir)
    values: dict[str, Any] = {
        "corp_id": corp_id, "secret": secret, "callback_token": callback_token, "aes_key": aes_key,
        "api_base": api_base, "staff_user_ids": list(staff or []), "entry_mode": entry_mode}
    try:
        settings = WeComSettings(**values)
    except ValidationError as exc:
        raise settings_refusal("wecom", exc) from None
    host = Host(public_url=ws.settings.public_url, home=ws.home, clock=ws.clock, secret="")
    connector = WeComConnector(settings, host)
    try:
        lines = connector.connect()
    finally:
        connector.api.close()
    path = save_platform_section(ws.home, "wecom", {
        "corp_id": settings.corp_id, "secret": settings.secret, "callback_token": settings.callback_token,
        "aes_key": settings.aes_key, "api_base": settings.api_base, "staff_user_ids": settings.staff_user_ids,
        "entry_mode": settings.entry_mode,
    })
    for line in lines:
        console.print(line, highlight=False, markup=False)
    console.print(f"Saved [platforms.wecom] in {path}", highlight=False, markup=False)


def register(connect_app: typer.Typer) -> None:
    connect_app.command("wecom")(connect_wecom)
