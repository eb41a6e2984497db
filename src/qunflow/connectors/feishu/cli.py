"""`qunflow connect feishu`: check the app id and secret (a tenant token), then save [platforms.feishu]."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from qunflow.cli.common import WorkspaceOption, console, workspace
from qunflow.connectors.registry import settings_refusal


def connect_feishu(
    app_id: Annotated[str, typer.Option("--app-id", help="The App ID (凭证与基础信息).")],
    app_secret: Annotated[str, typer.Option("--app-secret", help="The App Secret.")],
    verification_token: Annotated[str, typer.Option("--verification-token",
                                                    help="The Verification Token (事件与回调 → 加密策略).")],
    encrypt_key: Annotated[str, typer.Option("--encrypt-key", help="The Encrypt Key (事件与回调 → 加密策略).")],
    domain: Annotated[str, typer.Option("--domain", help="feishu (open.feishu.cn), lark (open.larksuite.com) "
                                                          "or a URL.")] = "feishu",
    link_validity: Annotated[str, typer.Option("--link-validity",
                                               help="Share links last: week, year or permanently.")]
    = "permanently",
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Connect a Feishu / Lark custom app: checks the credentials, saves \\[platforms.feishu], prints the set-up."""
    from qunflow.connectors.base import Host
    from qunflow.connectors.feishu.connector import FeishuConnector
    from qunflow.connectors.feishu.settings import FeishuSettings
    from qunflow.settings import save_platform_section

    ws = workspace(workspace_dir)
    values: dict[str, Any] = {"app_id": app_id, "app_secret": app_secret, "verification_token": verification_token,
                              "encrypt_key": encrypt_key, "domain": domain, "link_validity": link_validity}
    try:
        settings = FeishuSettings(**values)
    except ValidationError as exc:
        raise settings_refusal("feishu", exc) from None
    connector = FeishuConnector(settings, Host(public_url=ws.settings.public_url, home=ws.home, clock=ws.clock,
                                               secret=""))
    try:
        lines = connector.connect()
    finally:
        connector.api.close()
    path = save_platform_section(ws.home, "feishu", settings.model_dump())
    for line in lines:
        console.print(line, highlight=False, markup=False)
    console.print(f"Saved [platforms.feishu] in {path}", highlight=False, markup=False)


def register(connect_app: typer.Typer) -> None:
    connect_app.command("feishu")(connect_feishu)
