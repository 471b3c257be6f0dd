"""Small Streamlit helpers the pages share: the run picker, state badges, error display."""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import streamlit as st
from PIL import Image

from . import owner, run_choice, space
from ..training.config import ConfigError
from ..data import DATASETS, DatasetError
from ..inference import ImageError
from ..models import ModelError
from ..runs import Run, RunError, list_runs
from .tables import model_title, origin

try:  # the Hub is optional: without it (or its dependencies) every page still works
    from .. import hub
except ImportError:
    hub = None

log = logging.getLogger("tinyvit.app")

# Problems a user can cause or fix; shown as a one-line error, never as a traceback.
USER_ERRORS = (RunError, ConfigError, DatasetError, ModelError, ImageError) + \
    ((hub.HubError,) if hub is not None else ())
STATE_COLOURS = {"queued": "gray", "running": "blue", "finished": "green", "stopped": "orange",
                 "failed": "red", "diverged": "red", "pruned": "violet"}
STATE_ICONS = {"queued": ":material/hourglass_empty:", "running": ":material/play_circle:",
               "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:", "diverged": ":material/trending_up:",
               "pruned": ":material/content_cut:"}
CURRENT = "current_run"   # session key: the run last picked on any page
DELETED = "deleted_run"   # session key: a run this session deleted (no "it vanished" warning)
DISPLAY_PX = 192          # tiny dataset images are shown enlarged, pixel-sharp


# -- on a Hugging Face Space --------------------------------------------------------------
OWNER_COOKIE = "tinyvit_owner"  # the browser's owner token (tinyvit.app.owner), kept by the browser
OWNER_PARAM = "owner"           # the same token in the URL, until the browser has the cookie
OWNER_KEY = "_tinyvit_owner"    # session key: this session's token
ADMIN_KEY = "_tinyvit_admin"   # session key: what this session typed as the admin token
COOKIE_DAYS = 30


def space_notice() -> None:
    """On a Space: the disk is not persistent, the training caps (nothing elsewhere)."""
    notice = space.space_notice(token_set=hub is not None and hub.hub_token() is not None)
    if notice:
        st.warning(notice, icon=":material/cloud_off:")


def browser_token() -> str | None:
    """On a Space, this browser's owner token: its cookie, else the one in the URL (a
    refresh before the cookie was sent), else a new one. None off a Space."""
    if not space.on_space():
        return None
    if OWNER_KEY not in st.session_state:
        found = [t for t in (st.context.cookies.get(OWNER_COOKIE), st.query_params.get(OWNER_PARAM))
                 if owner.valid_token(t)]
        st.session_state[OWNER_KEY] = found[0] if found else owner.new_token()
    return st.session_state[OWNER_KEY]


def keep_browser_token() -> None:
    """Make the browser keep its token (app.py, every run): a cookie for refreshes and new
    tabs, and, until the cookie comes back with a request, the URL's `owner` parameter
    (some browsers refuse cookies to a Space's iframe)."""
    token = browser_token()
    if token is None:
        return
    if st.context.cookies.get(OWNER_COOKIE) == token:
        if OWNER_PARAM in st.query_params:
            del st.query_params[OWNER_PARAM]  # the cookie does it: keep the key out of shared links
        return
    if st.query_params.get(OWNER_PARAM) != token:
        st.query_params[OWNER_PARAM] = token
    secure = "; Secure" if st.context.url and st.context.url.startswith("https") else ""
    # The token is [A-Za-z0-9_-] only (owner.valid_token), safe inside the script.
    st.html(f"<script>document.cookie = '{OWNER_COOKIE}={token}; Max-Age={COOKIE_DAYS * 86400}; "
            f"Path=/; SameSite={'None' if secure else 'Lax'}{secure}';</script>", unsafe_allow_javascript=True)


def may_control(run: Run) -> bool:
    """Whether this browser may stop, resume or delete `run` (always, off a Space)."""
    return owner.may_control(run, browser_token(), st.session_state.get(ADMIN_KEY))


def admin_login() -> None:
    """On a Space whose owner set TINYVIT_ADMIN_TOKEN: a field to type it in."""
    if not space.on_space() or not os.environ.get(owner.ADMIN_ENV, "").strip():
        return
    with st.expander("Space owner", icon=":material/admin_panel_settings:"):
        # Copied out of the widget: a widget's value is forgotten on pages that do not draw it.
        st.text_input("Admin token", type="password", key="space_admin",
                      on_change=lambda: st.session_state.update({ADMIN_KEY: st.session_state["space_admin"]}),
                      help="The Space's TINYVIT_ADMIN_TOKEN secret: control every run, not only yours.")
        if st.session_state.get(ADMIN_KEY):
            if owner.is_admin(st.session_state[ADMIN_KEY]):
                st.caption("Admin: you may stop, resume and delete every run.")
            else:
                st.error("That is not this Space's admin token.", icon=":material/lock:")


# Command-line flags in messages written by train.py, as the app's words for the same thing.
_FLAG_WORDS = {"--lr": "learning rate", "--resume": "Resume", "--threads": "CPU threads",
               "--epochs": "epochs", "--batch-size": "batch size"}


def app_text(message: str) -> str:
    """A trainer message fit for the app: no command-line flags ("try a lower --lr")."""
    text = str(message)
    for flag, words in _FLAG_WORDS.items():
        text = re.sub(rf"{re.escape(flag)}(?![\w-])", words, text)
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", " "), text)


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def state_badge(state: str) -> None:
    st.badge(state, icon=STATE_ICONS.get(state), color=STATE_COLOURS.get(state, "gray"))


def all_runs() -> list[Run]:
    """Every run the pages offer: the runs folder (newest first), the demo runs (the featured
    pair first), then the runs loaded from the Hugging Face Hub."""
    runs = run_choice.demos_in_order(list_runs())
    if hub is not None:
        runs += list_runs(hub.hub_runs_root())
    return runs


def run_label(run: Run) -> str:
    """'name · TinyViT on Digits · demo' for pickers.

    Only what never changes: Streamlit keeps showing a keyed widget's first label for the
    chosen option, so a state or accuracy here would go stale while a job trains."""
    try:
        cfg = run.config()
    except RunError:
        return f"{run.name} · " + ("damaged" if run.exists else "deleted")
    model = model_title(cfg)
    what = f"{model} on {DATASETS[cfg['dataset']].title if cfg.get('dataset') in DATASETS else cfg.get('dataset', '?')}"
    source = origin(run)
    return f"{run.name} · {what}" + (f" · {source}" if source else "")


def _forget_vanished(key: str, options: list[str]) -> None:
    """A picker (or the shared choice) naming a run that is gone: say so, pick another.
    A run that exists but is filtered out here (e.g. no weights yet) is dropped quietly."""
    warned = False
    for k in (key, CURRENT):
        held = st.session_state.get(k)
        if held and held not in options:
            st.session_state.pop(k, None)
            gone = not (Path(held) / "config.json").is_file()
            if not warned and gone and held != st.session_state.get(DELETED):
                st.warning(f"The run **{Path(held).name}** no longer exists (deleted, perhaps in "
                           "another tab); showing another run.", icon=":material/warning:")
                warned = True


def run_picker(key: str, label: str = "Run", runs: list[Run] | None = None,
               keep: Callable[[Run], bool] | None = None, help: str | None = None) -> Run | None:
    """A selectbox of runs on disk (newest first), remembering the choice across pages.

    `keep` filters runs (e.g. only runs with weights). Returns None when there is none."""
    runs = [r for r in (all_runs() if runs is None else runs) if keep is None or keep(r)]
    options = [str(r.path) for r in runs]
    wkey = f"picker_{key}"
    if st.session_state.get(wkey) not in options or st.session_state.get(CURRENT) not in options:
        _forget_vanished(wkey, options)
    if not runs:
        return None
    if wkey not in st.session_state:
        # Initialised through session state (never `index=`), so the app may also set it.
        remembered = st.session_state.get(CURRENT)
        st.session_state[wkey] = remembered if remembered in options else options[0]
    labels = {str(r.path): run_label(r) for r in runs}
    choice = st.selectbox(label, options, key=wkey, format_func=lambda p: labels.get(p, Path(p).name),
                          help=help)
    st.session_state[CURRENT] = choice
    return Run(Path(choice))


def forget_deleted(run: Run) -> None:
    """After deleting `run` here: drop it from the pickers without warning that it vanished."""
    st.session_state[DELETED] = str(run.path)
    st.session_state.pop(CURRENT, None)


def select_run(key: str, run: Run) -> None:
    """Make `run` the picker's choice on its next render (call before the picker is drawn)."""
    st.session_state[f"picker_{key}"] = str(run.path)
    st.session_state[CURRENT] = str(run.path)


@contextlib.contextmanager
def guard(what: str = "this page") -> Iterator[None]:
    """Show a user's mistake as st.error and anything unexpected as a short error, never
    a traceback (the traceback goes to the server log)."""
    try:
        yield
    except USER_ERRORS as err:
        st.error(str(err), icon=":material/error:")
    except FileNotFoundError as err:
        # A run folder removed while it was being read (another tab deleted it).
        st.warning(f"A file vanished while {what} was reading it ({Path(err.filename or '?').name}); "
                   "the run was probably deleted. Pick another run.", icon=":material/warning:")
    except Exception as err:  # noqa: BLE001 - the UI must keep working
        log.exception("unexpected error in %s", what)
        st.error(f"Something went wrong in {what}: {type(err).__name__}: {err}", icon=":material/error:")


def enlarge(img: Image.Image, size: int = DISPLAY_PX) -> Image.Image:
    """Tiny images (16 px digits) enlarged with nearest neighbour, so pixels stay crisp."""
    img = img.convert("RGB") if img.mode not in ("RGB", "L") else img
    if max(img.size) >= size:
        return img
    scale = size / max(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.NEAREST)


# -- the Hugging Face Hub ---------------------------------------------------------------
def hub_loader(key: str, on_loaded: Callable[[Run], None] | None = None) -> None:
    """'Load from the Hub': a repo id in, a read-only local run out, chosen in the picker
    `key` (or handed to `on_loaded`); call it before the picker is drawn."""
    with st.expander("Load a run from the Hugging Face Hub", icon=":material/cloud_download:"):
        if hub is None:
            st.caption("The Hub support (tinyvit.hub) is not available in this installation.")
            return
        with st.form(f"hub_load_{key}", border=False, enter_to_submit=True):
            repo = st.text_input("Repository id", placeholder="user/tinyvit-digits", key=f"hub_repo_{key}",
                                 help="A model repo pushed from TinyViT Lab (Train or Metrics page, or "
                                      "`python -m tinyvit.hub push`).")
            load = st.form_submit_button("Load", icon=":material/download:")
        if load:
            with guard("loading from the Hub"), st.spinner(f"Downloading {repo}…"):
                path = hub.load_run_from_hub(repo)
                (on_loaded or (lambda run: select_run(key, run)))(Run(Path(path)))
                st.session_state[f"hub_loaded_{key}"] = str(path)
                st.rerun()
        loaded = st.session_state.get(f"hub_loaded_{key}")
        if loaded:
            st.caption(f"Loaded into `{loaded}` (read-only) and picked below.")


def hub_pusher(run: Run, key: str) -> None:
    """'Push to Hub' for a finished run, shown only when a Hugging Face token is set."""
    if hub is None or hub.hub_token() is None:
        return
    if run.status()["state"] != "finished":
        return
    with st.popover("Push to Hub", icon=":material/cloud_upload:"):
        with st.form(f"hub_push_{key}", border=False):
            # On a Space: the Space owner's namespace and the run's name, to start from.
            repo = st.text_input("Repository id", value=space.suggested_repo_id(run.name),
                                 placeholder="user/tinyvit-digits", key=f"hub_push_repo_{key}",
                                 help="Created if missing; uses the token from HF_TOKEN, Streamlit secrets "
                                      "or `hf auth login`.")
            private = st.checkbox("Private repository", key=f"hub_private_{key}")
            push = st.form_submit_button("Push", type="primary", icon=":material/cloud_upload:")
        if push:
            with guard("pushing to the Hub"), st.spinner(f"Uploading {run.name}…"):
                url = hub.push_run(run.path, repo, private=private)
                st.success(f"Pushed to {url}", icon=":material/check_circle:")
