"""Who may stop, resume or delete a run on a public Hugging Face Space.

Off a Space everything is allowed, as before. On a Space (SPACE_ID set) every visitor
shares one runs folder, so a run belongs to the browser that launched it: the app gives
each browser a random token, and the launch stores only the token's SHA-256 in the run
folder (owner.json). A visitor whose token matches may stop, resume and delete the run;
everyone else sees it read-only. The Space owner sets TINYVIT_ADMIN_TOKEN (a Space
secret) and types it into the app to control every run. No Streamlit here.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets

from ..checkpoint import atomic_write_text
from ..runs import Run
from .space import on_space

OWNER_FILE = "owner.json"
ADMIN_ENV = "TINYVIT_ADMIN_TOKEN"
# What new_token() makes; anything else coming back from a browser is ignored.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def valid_token(token) -> bool:
    return isinstance(token, str) and bool(_TOKEN_RE.match(token))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def record_owner(run: Run, token: str) -> None:
    """Store the launching browser's token hash in the run folder (never the token)."""
    if not valid_token(token):
        raise ValueError("not an owner token")
    atomic_write_text(run.file(OWNER_FILE), json.dumps({"sha256": token_hash(token)}))


def recorded_owner(run: Run) -> str | None:
    try:
        data = json.loads(run.file(OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("sha256") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def is_admin(typed: str | None) -> bool:
    """`typed` is the Space's TINYVIT_ADMIN_TOKEN (unset or empty: nobody is admin)."""
    admin = os.environ.get(ADMIN_ENV, "").strip()
    return bool(admin) and isinstance(typed, str) and hmac.compare_digest(typed.strip().encode(), admin.encode())


def may_control(run: Run, token: str | None, admin: str | None = None) -> bool:
    """Whether the browser holding `token` (and `admin`, what it typed as the admin token)
    may stop, resume or delete `run`. A run without owner.json on a Space (one trained
    before, or from the command line) is the admin's only."""
    if not on_space() or is_admin(admin):
        return True
    owner = recorded_owner(run)
    return bool(owner) and valid_token(token) and hmac.compare_digest(owner, token_hash(token))
