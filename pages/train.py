"""Train: a form that launches train.py, and a live view of any run on disk.

Nothing trains here: Launch starts a separate process (tinyvit.app.jobs) and returns; the
live view re-reads the run folder every REFRESH seconds in a fragment, so it shows the
same thing in every tab and after a refresh.
"""
from __future__ import annotations

import streamlit as st

from tinyvit.app import cache, charts, jobs, navigation, space, tables, ui
from tinyvit.training.config import PRESETS, SCHEDULES, ConfigError, TrainConfig, apply_preset, defaults_for
from tinyvit.training.step import cpu_bf16_supported
from tinyvit.data import DATASETS, how_to_get, offline_source
from tinyvit.models import MODELS
from tinyvit.models.vit import NORMS
from tinyvit.runs import ACTIVE, Run, RunError
from tinyvit.training.steps import read_steps

REFRESH = 1.5  # seconds between live updates
DIED = "the training process "  # how Run.status() words a dead pid ("… ended unexpectedly")
CUSTOM = "(custom)"
FLASH = "train_flash"  # session key: a message for the next run of the page
TOAST = "train_toast"  # session key: a toast for the next run of the page
FILLED = "tf__filled"  # session key: the settings as last filled in from defaults or a preset
DATASET_NOTE = "tf__dataset_note"  # session key: what the last dataset change reset and kept
# Widget keys of the training settings (prefix tf_; model hyperparameters: hp_<model>_<name>).
SETTINGS = dict(tf_epochs="epochs", tf_batch="batch_size", tf_lr="lr", tf_wd="weight_decay",
                tf_ls="label_smoothing", tf_schedule="schedule", tf_warmup="warmup_epochs",
                tf_erasing="random_erasing", tf_augment="augment", tf_seed="seed", tf_bf16="cpu_bf16")
LABELS = dict(tf_epochs="epochs", tf_batch="batch size", tf_lr="learning rate", tf_wd="weight decay",
              tf_ls="label smoothing", tf_schedule="LR schedule", tf_warmup="warmup epochs",
              tf_erasing="random erasing", tf_augment="augmentation", tf_seed="seed", tf_bf16="bf16 on CPU")
# Model hyperparameters a dataset's default recipe may set (the "plus" recipe: no ViT dropout);
# refilled with the settings above when the dataset or the model changes.
RECIPE_HPARAMS = ("dropout",)


# -- the form's state ---------------------------------------------------------------------
def form_defaults(dataset: str, preset: str | None = None, model: str | None = None) -> dict:
    """What the form shows for `model` on `dataset`: TrainConfig's defaults, then the dataset's
    (the slides' setup, the small-data recipe for the offline datasets, the "plus" recipe for
    Fashion-MNIST), then the preset."""
    values = {**TrainConfig().to_dict(), **defaults_for(dataset, model)}
    if preset:
        values.update(apply_preset(preset))
    return values


def _widget_values(values: dict) -> dict:
    """Settings as the form's widgets hold them, by widget key."""
    out = {}
    for key, name in SETTINGS.items():
        value = values[name]
        if name == "epochs":
            value = _capped_epochs(value)
        # Streamlit keeps a number input's type: floats stay floats, whole numbers ints.
        out[key] = float(value) if name in ("lr", "weight_decay", "label_smoothing", "warmup_epochs",
                                            "random_erasing") else value
    return out


def _set_settings(values: dict, keep: set[str] = frozenset()) -> None:
    """Fill the settings from `values`, except the widget keys in `keep`; remember what was
    filled in, so a later dataset change can tell the user's edits from defaults."""
    filled = _widget_values(values)
    for key, value in filled.items():
        if key not in keep:
            st.session_state[key] = value
    st.session_state[FILLED] = filled


def _capped_epochs(epochs: int) -> int:
    limit = space.space_limits()["max_epochs"]
    return min(int(epochs), limit) if limit else int(epochs)


def _init_state() -> None:
    """First visit: the default dataset's settings (later visits keep the user's values)."""
    if "tf_dataset" not in st.session_state:
        _set_settings(form_defaults(TrainConfig.dataset))
    elif "tf_epochs" in st.session_state:
        st.session_state["tf_epochs"] = _capped_epochs(st.session_state["tf_epochs"])
    for key, value in dict(tf_preset=CUSTOM, tf_dataset=TrainConfig.dataset, tf_model=TrainConfig.model,
                           tf_subset=0, tf_img_size=32, tf_threads=0).items():
        st.session_state.setdefault(key, value)
    for name, spec in MODELS.items():
        for hp, value in spec.hparams.items():
            st.session_state.setdefault(f"hp_{name}_{hp}", _hp_widget_value(hp, value))


def _hp_widget_value(name: str, value):
    if name == "widths":
        return ", ".join(str(v) for v in value)
    if name == "patch_size":
        return 0  # 0 = the registry's size-dependent default (an 8×8 grid)
    return value


def _on_dataset() -> None:
    """The new dataset's defaults, except for the settings the user changed: those are kept,
    and the form says which were reset and which kept."""
    _refill(DATASETS[st.session_state["tf_dataset"]].title)


def _on_model() -> None:
    """Another model: its defaults on this dataset (Fashion-MNIST's recipe differs for a ViT
    and a CNN), the user's changes kept as for a dataset change."""
    _refill(f"{MODELS[st.session_state['tf_model']].title} on {DATASETS[st.session_state['tf_dataset']].title}")


def _refill(what: str) -> None:
    dataset, model = st.session_state["tf_dataset"], st.session_state["tf_model"]
    filled = st.session_state.get(FILLED, {})
    edited = {key for key in SETTINGS if key in filled and st.session_state.get(key) != filled[key]}
    before = {key: st.session_state.get(key) for key in SETTINGS}
    values = form_defaults(dataset, model=model)
    _set_settings(values, keep=edited)
    _set_recipe_hparams(model, values.get("model_hparams", {}))
    st.session_state["tf_preset"] = CUSTOM
    reset = [f"{LABELS[k]} {_show(before[k])} → {_show(st.session_state[k])}" for k in SETTINGS
             if k not in edited and before[k] != st.session_state[k]]
    notes = []
    if reset:
        notes.append(f"Set to {what}'s defaults: {', '.join(reset)}.")
    if edited:
        notes.append("Kept your " + ", ".join(f"{LABELS[k]} ({_show(st.session_state[k])})" for k in SETTINGS
                                              if k in edited) + ".")
    st.session_state[DATASET_NOTE] = " ".join(notes) or None


def _set_recipe_hparams(model: str, hparams: dict) -> None:
    """The recipe's model hyperparameters, or the registry's default where it sets none."""
    for hp in RECIPE_HPARAMS:
        if hp in MODELS[model].hparams:
            st.session_state[f"hp_{model}_{hp}"] = hparams.get(hp, MODELS[model].hparams[hp])


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _on_preset() -> None:
    """Fill the form from a preset: the study's (seed-*) or the improved recipe's (plus-*)."""
    name = st.session_state["tf_preset"]
    st.session_state[DATASET_NOTE] = None
    if name == CUSTOM:
        return
    values = form_defaults(PRESETS[name]["dataset"], name, PRESETS[name]["model"])
    st.session_state["tf_dataset"] = values["dataset"]
    st.session_state["tf_model"] = values["model"]
    _set_settings(values)
    for hp, value in values.get("model_hparams", {}).items():
        st.session_state[f"hp_{values['model']}_{hp}"] = _hp_widget_value(hp, value) \
            if hp == "widths" else value


def _parse_widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"CNN widths must be whole numbers separated by commas, got {text!r}") from None
    if not widths or min(widths) <= 0:
        raise ConfigError("CNN widths need at least one positive channel count, e.g. 64, 128, 256")
    return widths


def _config_from_form() -> TrainConfig:
    s = st.session_state
    model = s["tf_model"]
    hparams = {}
    for hp in MODELS[model].hparams:
        value = s[f"hp_{model}_{hp}"]
        if hp == "widths":
            value = _parse_widths(value)
        if hp == "patch_size" and not value:
            continue  # auto
        hparams[hp] = value
    preset = s["tf_preset"] if s["tf_preset"] != CUSTOM else None
    return TrainConfig(
        dataset=s["tf_dataset"], model=model, model_hparams=hparams,
        subset=int(s["tf_subset"]) or None, threads=int(s["tf_threads"]) or None,
        img_size=int(s["tf_img_size"]) if s["tf_dataset"] == "imagefolder" else None,
        preset=preset, **{field: s[key] for key, field in SETTINGS.items()})


# -- the form -----------------------------------------------------------------------------
def model_settings(model: str) -> None:
    spec = MODELS[model]
    if not spec.hparams:
        st.caption(f"{spec.title} has no settings to tune here.")
        return
    cols = st.columns(2)
    for i, (hp, default) in enumerate(spec.hparams.items()):
        key, col = f"hp_{model}_{hp}", cols[i % 2]
        label = hp.replace("_", " ").capitalize()
        if hp == "norm":
            col.selectbox("LayerNorm", NORMS, key=key, help="post = the study (nn.TransformerEncoderLayer) and the default: it trained "
                          "better on digits; pre = before attention and MLP: it generalised better on "
                          "32-pixel colour shapes (see the README)")
        elif hp == "widths":
            col.text_input("Widths", key=key, help="channels per stage, comma-separated")
        elif hp == "patch_size":
            col.number_input("Patch size", min_value=0, max_value=64, step=1, key=key,
                             help="0 = automatic: the smallest patch giving an 8×8 grid")
        elif isinstance(default, float):
            col.number_input(label, min_value=0.0, max_value=0.9, step=0.05, key=key)
        else:
            col.number_input(label, min_value=1, max_value=4096, step=1, key=key)


def training_settings() -> None:
    limits = space.space_limits()
    c = st.columns(2)
    c[0].number_input("Epochs", min_value=1, max_value=limits["max_epochs"] or 1000, step=1, key="tf_epochs",
                      help="the dataset's usual length (100 for CIFAR/STL, as in the study)"
                           + (f"; at most {limits['max_epochs']} here" if limits["max_epochs"] else ""))
    c[1].number_input("Batch size", min_value=1, max_value=4096, step=1, key="tf_batch")
    c[0].number_input("Learning rate (AdamW)", min_value=1e-6, max_value=1.0, step=1e-4, format="%.1e",
                      key="tf_lr")
    c[1].number_input("Weight decay", min_value=0.0, max_value=1.0, step=0.01, format="%.3f", key="tf_wd")
    c[0].selectbox("LR schedule", SCHEDULES, key="tf_schedule",
                   help="constant = the study; cosine decays to 0 (the small-data recipe)")
    c[1].number_input("Warmup epochs", min_value=0.0, max_value=100.0, step=0.5, format="%.1f",
                      key="tf_warmup", help="linear warmup before the schedule")
    c[0].number_input("Random erasing", min_value=0.0, max_value=1.0, step=0.05, format="%.2f", key="tf_erasing",
                      help="share of training images with one random rectangle blanked (Zhong et al. 2020); "
                           "0 = off, the study")
    c[1].number_input("Label smoothing", min_value=0.0, max_value=0.9, step=0.05, key="tf_ls")
    c[0].number_input("Seed", min_value=0, max_value=2 ** 31 - 1, step=1, key="tf_seed")
    c[1].number_input("Images per class", min_value=0, max_value=100_000, step=10, key="tf_subset",
                      help="0 = all; a small number makes a quick run")
    c[0].number_input("CPU threads", min_value=0, max_value=limits["threads"] or 256, step=1, key="tf_threads",
                      help=f"0 = {limits['threads']}, the most allowed here" if limits["threads"] else "0 = all cores")
    st.toggle("Augmentation", key="tf_augment", help="the dataset's flips/crops/shifts while training")
    bf16 = cpu_bf16_supported()
    st.toggle("bf16 on CPU", key="tf_bf16", disabled=not bf16,
              help="bf16 autocast: about twice the CNN's training speed on a CPU with "
                   "native bf16; the ViTs gain nothing" if bf16 else
                   "this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX), so bf16 would only be slower")


def dataset_availability(dataset: str) -> None:
    """Where a downloadable dataset is found on this machine, or how to get it."""
    if DATASETS[dataset].offline:
        return
    found = offline_source(dataset)
    if found:
        st.caption(f"Available offline: {found}", help="no download needed")
    else:
        st.info(how_to_get(dataset), icon=":material/download:")


def launch_form() -> None:
    st.subheader("New training run")
    st.selectbox("Start from", [CUSTOM, *PRESETS], key="tf_preset", on_change=_on_preset,
                 help="seed-*: the study's setups (CIFAR-10/100, STL-10; they need the dataset files or a "
                      "download); plus-*: the improved recipe (see the README's recipe study)")
    c = st.columns(2)
    c[0].selectbox("Dataset", list(DATASETS), key="tf_dataset", on_change=_on_dataset,
                   format_func=lambda d: DATASETS[d].title + ("" if offline_source(d) else " (download)"))
    c[1].selectbox("Model", list(MODELS), key="tf_model", on_change=_on_model,
                   format_func=lambda m: MODELS[m].title)
    dataset, model = st.session_state["tf_dataset"], st.session_state["tf_model"]
    if st.session_state.get(DATASET_NOTE):
        st.info(st.session_state[DATASET_NOTE], icon=":material/tune:")
    st.caption(f"{DATASETS[dataset].description}  \n{MODELS[model].description}")
    dataset_availability(dataset)
    zipped = zip_dataset() if dataset == "imagefolder" else None
    with st.expander("Training settings", expanded=True):
        training_settings()
    with st.expander(f"{MODELS[model].title} settings"):
        model_settings(model)
    st.caption(f"{jobs.max_jobs()} job slot(s) (TINYVIT_MAX_JOBS): a launch beyond them waits in the "
               "queue. Jobs keep training when you leave this page or close the tab.")
    if st.button("Launch training", type="primary", icon=":material/rocket_launch:", key="launch"):
        launch(zipped)
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH), icon=":material/rocket_launch:")


def zip_dataset():
    """The image-folder upload: checked as soon as it arrives, so a bad zip is named before
    anything is launched. Returns (upload, summary) or None."""
    upload = st.file_uploader("Dataset (.zip with one folder per class)", type=["zip"], key="zip_upload",
                              help="e.g. cats/001.jpg, dogs/002.png … (or train/ and test/ folders, "
                                   "each with the class folders)")
    st.number_input("Image size (pixels)", min_value=8, max_value=256, step=8, key="tf_img_size")
    if upload is None:
        return None
    summary = cache.check_zip_upload(upload, int(st.session_state["tf_img_size"]))
    if "error" in summary:
        st.error(summary["error"], icon=":material/folder_off:")
    else:
        names = summary["class_names"]
        st.success(f"{len(names)} classes ({', '.join(names[:8])}{' …' if len(names) > 8 else ''}) · "
                   f"{summary['train']} train / {summary['val']} validation / {summary['test']} test images",
                   icon=":material/folder_zip:")
    return upload, summary


def launch(zipped) -> None:
    with ui.guard("launching"):
        cfg = _config_from_form()
        if cfg.dataset == "imagefolder":
            if zipped is None:
                raise ConfigError("upload a .zip of class folders for the image-folder dataset")
            upload, summary = zipped
            if "error" in summary:
                raise ConfigError(summary["error"])
            cfg.data_path = str(jobs.save_upload(upload.getvalue(), upload.name))
        with st.spinner("Reading the dataset, so the run records its classes and normalisation…"):
            run = jobs.launch(cfg, owner=ui.browser_token())
        ui.select_run("train", run)
        # Redraw the whole page (job list in the sidebar, live view), with the news on top.
        st.session_state[FLASH] = f"Launched **{run.name}**: it is shown on the right."
        st.rerun()


# -- the live view ------------------------------------------------------------------------
def job_panel() -> None:
    st.subheader("Runs")
    ui.admin_login()
    if TOAST in st.session_state:
        st.toast(st.session_state.pop(TOAST))
    run = ui.run_picker("train", "Show run", help="Any run on disk: a job you launched, one from "
                        "another tab, or an older run to look at its curves.")
    if run is None:
        st.info("No runs yet: launch one with the form.", icon=":material/info:")
        return
    polling = _polling(run)
    st.fragment(run_every=REFRESH if polling else None)(live_view)(str(run.path), polling)


def _polling(run: Run) -> bool:
    """Refresh while this run or any other job is queued or training."""
    return run.status()["state"] in ACTIVE or bool(jobs.active_runs())


def live_view(path: str, polling: bool) -> None:
    from pathlib import Path
    run = Run(Path(path))
    if not run.exists:
        st.warning(f"The run **{run.name}** no longer exists (deleted, perhaps in another tab).",
                   icon=":material/warning:")
        return
    with ui.guard("the live view"):
        if _polling(run) != polling:
            st.rerun()  # a job started or ended: redraw the page (picker labels, polling on/off)
        # One read of the run per refresh: the chart and the numbers beside it show the same moment.
        status, rows, steps, cfg = run.status(), run.metrics(), read_steps(run), run.config()
        header(run, status, cfg)
        state_message(run, status, rows)
        if status["state"] == "running":
            progress(status, rows, cfg)
        latest_numbers(rows, steps)
        epochs = status.get("epochs") or cfg.get("epochs")
        st.plotly_chart(charts.loss_accuracy(rows, epochs=int(epochs) if epochs else None, steps=steps),
                        key="live_chart")
        actions(run, status)
        queue_table()


def header(run: Run, status: dict, cfg: dict) -> None:
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.markdown(f"**{run.name}**")
    with right:
        ui.state_badge(status["state"])
    sizes = cfg.get("sizes")
    parts = [tables.model_title(cfg),
             cfg.get("dataset_title") or cfg.get("dataset", "?")]
    if cfg.get("num_params"):
        parts.append(f"{cfg['num_params']:,} parameters")
    if sizes:
        parts.append(f"{sizes['train']:,} train / {sizes['val']:,} val / {sizes['test']:,} test images")
    parts.append(f"batch {cfg.get('batch_size')}, lr {cfg.get('lr'):g}")
    st.caption(" · ".join(str(p) for p in parts))


def state_message(run: Run, status: dict, rows: list[dict]) -> None:
    state = status["state"]
    if state == "queued":
        st.info(f"Queued: {ui.app_text(status.get('message') or 'starting…')}", icon=":material/hourglass_empty:")
    elif state in ("failed", "diverged"):
        st.error(f"Training {state}: {ui.app_text(failure_reason(run, status))}", icon=":material/error:")
        tail = jobs.log_tail(run)
        if tail:
            with st.expander("Trainer output (train.log)"):
                st.code(tail, language=None)
    elif state == "stopped":
        where = f"after {ui.plural(len(rows), 'epoch')}" if rows else "before its first epoch ended"
        st.warning(f"Stopped {where}.", icon=":material/stop_circle:")
    elif state == "pruned":
        st.info(f"Pruned: {status.get('message') or 'ended early by its sweep'}", icon=":material/content_cut:")
    elif state == "finished":
        test = run.test_metrics() or {}
        acc = f" Test accuracy **{100 * test['accuracy']:.1f}%**." if "accuracy" in test else ""
        st.success(f"Finished after {ui.plural(len(rows), 'epoch')}.{acc}", icon=":material/check_circle:")
        st.page_link(navigation.page("metrics"), label="See all metrics", icon=":material/analytics:")
    if state in ("stopped", "failed", "diverged") and not run.readonly:
        problem = resume_problem(run)
        if problem is None:
            st.caption(f"Resume continues from epoch {len(rows) + 1}.")
        else:
            st.caption(f"Resume is not offered: {problem}.", help="Launch a new run with the same settings instead.")


def failure_reason(run: Run, status: dict) -> str:
    """status.json's error; when the process died without writing one, train.py's own last
    `error:` line from its log (e.g. a damaged checkpoint on resume)."""
    error = status.get("error") or ""
    logged = jobs.log_error(run)
    if logged and (not error or error.startswith(DIED)):
        return logged
    return error or "no message"


def progress(status: dict, rows: list[dict], cfg: dict) -> None:
    epochs = int(status.get("epochs") or cfg.get("epochs") or 1)
    epoch = min(int(status.get("epoch") or 0), epochs - 1)
    batch, batches = int(status.get("batch") or 0), int(status.get("batches") or 0)
    st.progress(min(1.0, len(rows) / epochs), text=f"Epoch {epoch + 1} of {epochs}")
    if batches:
        st.progress(min(1.0, batch / batches), text=f"Batch {batch} of {batches}")
    cols = st.columns(2)
    cols[0].metric("Time left", tables.format_seconds(tables.time_left(status, rows)))
    if rows:
        cols[1].metric("Images / s", f"{rows[-1].get('images_per_second', 0):,.0f}")


def latest_numbers(rows: list[dict], steps: list[dict]) -> None:
    """The chart's last points as numbers: training (smoothed) and the last validation."""
    if not rows and not steps:
        return
    if steps:
        at, loss, acc = steps[-1]["epoch"], steps[-1]["loss_smooth"], steps[-1]["accuracy_smooth"]
    else:
        at, loss, acc = rows[-1]["epoch"], rows[-1].get("train_loss"), rows[-1].get("train_accuracy")
    cols = st.columns(3)
    cols[0].metric("Train loss", f"{loss:.3f}" if isinstance(loss, (int, float)) else "–",
                   help=f"at epoch {at:.2f}" + (", smoothed over the last batches" if steps else ""))
    cols[1].metric("Train accuracy", f"{100 * acc:.1f}%" if isinstance(acc, (int, float)) else "–")
    val = rows[-1].get("val_accuracy") if rows else None
    cols[2].metric("Val accuracy", f"{100 * val:.1f}%" if isinstance(val, (int, float)) else "–",
                   help=f"after epoch {rows[-1]['epoch']}" if rows else "after the first epoch")


def actions(run: Run, status: dict) -> None:
    state = status["state"]
    row = st.container(horizontal=True, vertical_alignment="center")
    # Keys carry the run's name, like Delete's: a click is never applied to another run.
    mine = not run.readonly and ui.may_control(run)
    if mine and state in ACTIVE and row.button(
            "Stop", icon=":material/stop:", key=f"stop_{run.name}",
            help="ends after the current batch, keeping the last complete epoch"):
        with ui.guard("stopping"):
            _check_control(run)
            done = jobs.stop(run)
            st.toast("Cancelled the queued job." if done == "cancelled"
                     else "Stop requested: the job ends after the current batch.")
            st.rerun()
    if mine and jobs.can_resume(run) and resume_problem(run) is None and row.button(
            "Resume", icon=":material/play_arrow:", key=f"resume_{run.name}",
            help="continue from the last complete epoch"):
        with ui.guard("resuming"):
            _check_control(run)
            jobs.resume(run)
            st.rerun()
    if mine and state != "running":
        delete_confirmation(run, row)
    with row:
        ui.hub_pusher(run, "train")
    if run.readonly:
        row.caption(f"{tables.origin(run)} run (read-only)")
    elif not mine:
        row.caption("Launched from another browser: you can watch it, not stop, resume or delete it.")


def _check_control(run: Run) -> None:
    """Checked again when the click arrives, not only when the button was drawn."""
    if not ui.may_control(run):
        raise RunError(f"{run.name} was launched from another browser: only that browser (or the "
                       "Space's owner) may change it")


def resume_problem(run: Run) -> str | None:
    """Why `run` cannot be resumed (no checkpoint yet, or one that fails its checks), or None."""
    return cache.checkpoint_problem(run)


def delete_confirmation(run: Run, row) -> None:
    """Delete behind a confirmation bound to this run by its keys: once the run is gone the
    next run's popover is another widget, closed, and a click meant for this one (the
    browser may still be showing it) matches nothing."""
    # Stateful (on_change="rerun"): the server, not the browser, decides whether it is open.
    with row.popover("Delete", icon=":material/delete:", key=f"delete_popover_{run.name}", on_change="rerun"):
        st.write(f"Delete **{run.name}** and all its files?")
        if st.button("Yes, delete", type="primary", key=f"delete_{run.name}"):
            with ui.guard("deleting"):
                _check_control(run)
                jobs.delete(run)
                ui.forget_deleted(run)
                # Shown after the rerun: a toast sent just before it would be lost.
                st.session_state[TOAST] = f"Deleted {run.name}."
                st.rerun()


def queue_table() -> None:
    active = jobs.active_runs()
    if not active:
        return
    st.markdown("**Job queue**")
    rows = []
    for i, r in enumerate(active, 1):
        try:
            s = r.status()
        except RunError:
            continue
        rows.append({"#": i, "run": r.name, "state": s["state"],
                     "epoch": f"{int(s.get('epoch') or 0) + 1}/{s.get('epochs') or '?'}"
                     if s["state"] == "running" else "", "note": s.get("message") or ""})
    st.dataframe(rows, hide_index=True)


def page() -> None:
    _init_state()
    st.title("Train")
    ui.space_notice()
    form_col, view_col = st.columns([2, 3], gap="large")
    with form_col:
        launch_form()
    with view_col:
        job_panel()


if __name__ == "__main__":
    navigation.run_app()
