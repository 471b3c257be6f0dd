"""Sweep: define a search space, launch Optuna workers (processes, through the job queue),
watch the trials live with Optuna's figures, stop and resume, open the best trials."""
from __future__ import annotations

import time
from contextlib import contextmanager

import optuna
import plotly.graph_objects as go
import streamlit as st
from optuna import visualization as ov

from tinyvit.app import jobs, navigation, ui
from tinyvit.data import DATASETS
from tinyvit.runs import default_root
from tinyvit.sweep import study as sweeps
from tinyvit.sweep.processes import live_workers, spawn_worker
from tinyvit.sweep.searchspace import MODEL_PARAMS, NAMED_SPACES, RECIPES, SpaceError
from tinyvit.sweep.storage import SweepError, local_sweeps, read_pointer
from tinyvit.sweep.table import accuracy_vs_params, local_run, trial_rows

optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no complete trials yet" is said on the page itself

REFRESH = 2.0  # seconds between live updates of the trial table and figures
PICK = "sw_pick"
FLASH = "sw_flash"
# Widget ranges offered for each parameter (the Optuna space is built from the user's picks).
CHOICES = {"embed_dim": [16, 32, 48, 64, 96, 128, 192], "num_heads": [1, 2, 4, 8], "patch_size": [2, 4, 8],
           "mlp_ratio": [1, 2, 4], "width": [8, 16, 32, 64], "recipe": list(RECIPES)}
RANGES = {"num_layers": (1, 12), "stages": (1, 4), "dropout": (0.0, 0.5)}
LOG_RANGES = {"lr": (1e-5, 1e-1), "weight_decay": (1e-5, 0.5)}
FORM_DEFAULTS = {"sw_dataset": "digits", "sw_trials": 12, "sw_epochs": 5, "sw_minutes": 0, "sw_workers": 1, "sw_subset": 0, "sw_threads": 0}


@contextmanager
def shown_errors(what: str):
    """Sweep mistakes (bad space, taken name, unreachable storage) as one-line errors."""
    with ui.guard(what):
        try:
            yield
        except (SweepError, SpaceError) as err:
            st.error(str(err), icon=":material/error:")


# -- defining and launching ---------------------------------------------------------------------
def space_widgets(model: str) -> dict:
    """The space from widgets, starting from the model's default space."""
    default = NAMED_SPACES[f"{model}-default"]
    space = {}
    for name in MODEL_PARAMS[model] + ("lr", "weight_decay", "recipe"):
        spec = default.get(name)
        key = f"sw_{model}_{name}"
        if name in CHOICES:
            st.session_state.setdefault(key, list((spec or {}).get("choices", [])))
            picked = st.multiselect(name, CHOICES[name], key=key,
                                    help="values to try; none: leave it at the model's default")
            if picked:
                space[name] = {"choices": picked}
        elif name in RANGES:
            lo, hi = RANGES[name]
            st.session_state.setdefault(key, (spec["low"], spec["high"]) if spec else (lo, lo))
            low, high = st.slider(name, lo, hi, key=key, step=0.05 if isinstance(lo, float) else 1)
            if spec or low != high:
                space[name] = {"low": low, "high": high}
        elif name in LOG_RANGES:
            c = st.columns(2)
            st.session_state.setdefault(f"{key}_low", float(spec["low"]))
            st.session_state.setdefault(f"{key}_high", float(spec["high"]))
            low = c[0].number_input(f"{name} from", *LOG_RANGES[name], format="%.0e", key=f"{key}_low")
            high = c[1].number_input(f"{name} to", *LOG_RANGES[name], format="%.0e", key=f"{key}_high")
            space[name] = {"low": low, "high": high, "log": True}
    return space


def define_form() -> None:
    st.subheader("New sweep")
    for key, value in FORM_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.session_state.setdefault("sw_name", f"sweep-{time.strftime('%m%d-%H%M%S')}")
    c = st.columns(3)
    name = c[0].text_input("Name", key="sw_name")
    dataset = c[1].selectbox("Dataset", list(DATASETS), key="sw_dataset", format_func=lambda d: DATASETS[d].title)
    model = c[2].selectbox("Model", list(MODEL_PARAMS), key="sw_model")
    how = st.radio("Search space", ["default", "small models", "choose"], horizontal=True, key="sw_how",
                   help="default: the model's default space; small models: tiny TinyViTs that train in "
                        "seconds; choose: pick values and ranges below")
    if how == "choose":
        with st.container(border=True):
            space = space_widgets(model)
    else:
        space = NAMED_SPACES["tinyvit-small" if how == "small models" and model == "tinyvit" else f"{model}-default"]
        st.json(space, expanded=False)
    st.markdown("**Budget**")
    b = st.columns(4)
    trials = b[0].number_input("Trials", 1, 500, key="sw_trials")
    epochs = b[1].number_input("Epochs per trial", 1, 500, key="sw_epochs")
    minutes = b[2].number_input("Time limit (min, 0: none)", 0, 10_000, key="sw_minutes")
    workers = b[3].number_input("Workers", 1, 16, key="sw_workers",
                                help=f"worker processes here; their trainings share the {jobs.max_jobs()} "
                                     "job slot(s) with the Train page (TINYVIT_MAX_JOBS)")
    o = st.columns(5)
    sampler = o[0].selectbox("Sampler", sweeps.SAMPLERS, key="sw_sampler")
    pruner = o[1].selectbox("Pruner", sweeps.PRUNERS, key="sw_pruner")
    second = o[2].selectbox("Second objective", list(sweeps.SECOND), key="sw_second",
                            help="params: fewer parameters; speed: more images/s (turns pruning off)")
    subset = o[3].number_input("Images per class (0: all)", 0, 100_000, key="sw_subset")
    threads = o[4].number_input("Threads per trial (0: all)", 0, 256, key="sw_threads")
    if st.button("Launch sweep", type="primary", icon=":material/rocket_launch:", key="sweep_launch"):
        with shown_errors("launching the sweep"):
            sweeps.create(name, dataset, model, space=space, trials=int(trials), epochs=int(epochs),
                          timeout=60.0 * minutes if minutes else None, sampler=sampler, pruner=pruner,
                          second=second, subset=int(subset) or None, threads=int(threads) or None)
            start_workers(name, int(workers), 60.0 * minutes if minutes else None)
            st.session_state[PICK] = name
            st.session_state[FLASH] = f"Launched sweep **{name}** with {workers} worker(s)."
            st.rerun()


def start_workers(name: str, n: int, timeout: float | None = None, storage: str | None = None) -> None:
    until = time.time() + timeout if timeout else None
    for _ in range(n):
        spawn_worker(name, default_root(), storage, jobs.max_jobs(), until)


# -- watching ------------------------------------------------------------------------------------
def pick_sweep() -> str | None:
    names = local_sweeps()
    if not names:
        st.info("No sweeps yet: define one above and launch it, or `python -m tinyvit.sweep create` one.",
                icon=":material/info:")
        return None
    if st.session_state.get(PICK) not in names:
        st.session_state[PICK] = names[-1]
    return st.selectbox("Sweep", names, key=PICK)


def live(name: str) -> None:
    with shown_errors("the sweep"):
        storage = read_pointer(name)
        study = sweeps.load(name, storage)
        settings = sweeps.settings_of(study)
        rows = trial_rows(study)
        workers = live_workers(name)
        done = sum(r["state"] in ("finished", "pruned", "failed", "skipped") for r in rows)
        stopping = sweeps.stop_requested(study)
        c = st.columns(4)
        c[0].metric("Trials done", f"{done} / {sweeps.budget(settings)}")
        c[1].metric("Workers here", len(workers))
        best = max((r["best val acc %"] for r in rows if r["state"] == "finished"), default=None)
        c[2].metric("Best val acc", "–" if best is None else f"{best:.1f}%")
        c[3].metric("State", "stopping" if stopping and workers else "stopped" if stopping
                    else "running" if workers else "idle")
        st.caption(f"{settings['model']} on {settings['dataset']} · {settings['epochs']} epochs per trial · "
                   f"{settings['sampler']} sampler · {settings['pruner']} pruner · storage: "
                   f"{storage or 'journal file'}")
        controls(name, study, bool(workers) or any(r["state"] == "running" for r in rows), stopping)
        if rows:
            st.dataframe(rows, hide_index=True, column_config={
                "best val acc %": st.column_config.NumberColumn(format="%.1f"),
                "parameters": st.column_config.NumberColumn(format="localized"),
                "img/s": st.column_config.NumberColumn(format="%.0f")})
            open_buttons(study)
            figures(study)


def controls(name: str, study, active: bool, stopping: bool) -> None:
    """Stop while trials run (here or on other machines); resume once stopped or idle."""
    row = st.container(horizontal=True)
    if active and not stopping and row.button("Stop sweep", icon=":material/stop:", key="sweep_stop",
                                   help="running trials end after their current batch, keeping a checkpoint"):
        n = sweeps.request_stop(study)
        st.toast(f"Stop requested: {n} running trial(s) end after their current batch.")
        st.rerun()
    if (stopping or not active) and row.button("Resume sweep", icon=":material/play_arrow:", key="sweep_resume",
                                                help="stopped trials continue from their checkpoints"):
        queued = sweeps.resume(study)
        start_workers(name, max(1, int(st.session_state.get("sw_workers", 1))), storage=read_pointer(name))
        st.toast(f"Resumed: {queued} stopped trial(s) continue.")
        st.rerun()


def open_buttons(study) -> None:
    done = sorted((t for t in study.get_trials(deepcopy=False) if t.values and local_run(t)),
                  key=lambda t: -t.values[0])
    row = st.container(horizontal=True)
    if row.button("Open best trial in Metrics", icon=":material/analytics:", key="sweep_open_best",
                  disabled=not done):
        ui.select_run("metrics", local_run(done[0]))
        st.switch_page(navigation.page("metrics"))
    if row.button("Compare top 3", icon=":material/compare:", key="sweep_compare", disabled=len(done) < 2):
        st.session_state["cmp_runs"] = [str(local_run(t).path) for t in done[:3]]
        st.switch_page(navigation.page("compare"))


def figures(study) -> None:
    multi = len(study.directions) > 1
    target = dict(target=lambda t: t.values[0], target_name="val accuracy") if multi else {}
    tabs = st.tabs(["History", "Parallel coordinates", "Importances", "Intermediate values",
                    "Accuracy vs parameters"])
    plots = [lambda: ov.plot_optimization_history(study, **target),
             lambda: ov.plot_parallel_coordinate(study, **target),
             lambda: ov.plot_param_importances(study, **target),
             lambda: ov.plot_intermediate_values(study),
             lambda: pareto(study)]
    for tab, plot in zip(tabs, plots):
        with tab:
            try:
                fig = plot()
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                st.caption(f"Not available yet: {err}")
                continue
            st.plotly_chart(fig, width="stretch")


def pareto(study) -> go.Figure:
    points = accuracy_vs_params(study)
    if not points:
        raise ValueError("no finished trial yet")
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["parameters"])
    fig = go.Figure([
        go.Scatter(x=[p["parameters"] for p in points], y=[p["best val acc %"] for p in points], mode="markers",
                   name="trials", text=[f"trial {p['trial']}" for p in points], marker=dict(size=9)),
        go.Scatter(x=[p["parameters"] for p in front], y=[p["best val acc %"] for p in front],
                   mode="lines+markers", name="Pareto front", line=dict(dash="dash")),
    ])
    fig.update_layout(title="Accuracy against parameter count", xaxis_title="parameters (log)",
                      yaxis_title="best val accuracy %", xaxis_type="log")
    return fig


def page() -> None:
    st.title("Sweep")
    st.caption("Hyperparameter sweeps with Optuna: each trial is an ordinary run (see it on every page), "
               "trained by worker processes through the same job queue as the Train page.")
    with st.expander("Define and launch a sweep", expanded=not local_sweeps()):
        define_form()
    if FLASH in st.session_state:  # outside the form, which folds away once a sweep exists
        st.success(st.session_state.pop(FLASH), icon=":material/rocket_launch:")
    chosen = pick_sweep()
    if chosen:
        st.fragment(run_every=REFRESH)(live)(chosen)


if __name__ == "__main__":
    navigation.run_app()
