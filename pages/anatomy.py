"""Anatomy: what a trained model holds, in the classic pictures. For a TinyViT, the analyses
of Dosovitskiy et al. 2021 (position-embedding similarity, principal components of the
patch embedding, mean attention distance per head and layer); for a CNN, its first-layer
filters and the receptive field of each stage."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from tinyvit import anatomy
from tinyvit.app import cache, navigation, ui, views, view_charts
from tinyvit.runs import Run

DISTANCE_IMAGES = 256  # test images the attention distance is averaged over


@st.cache_data(max_entries=8, show_spinner="Measuring attention distances…")
def attention_distances(path: str, weights_mtime: int) -> tuple[np.ndarray, int, str]:
    from pathlib import Path
    run = Run(Path(path))
    loaded = cache.load_model(run)
    images = views.test_images(run)
    if images is None:
        raise anatomy.AnatomyError("this run has no test images here (neither the dataset nor saved samples)")
    x = loaded.preprocess.normalize(images.images[:DISTANCE_IMAGES])
    source = "test images" if images.complete else "test images saved with the run"
    return anatomy.mean_attention_distance(loaded.model, x), len(x), source


def vit(run: Run, model) -> None:
    cfg = run.config()
    g, p = model.grid, model.patch_embed.patch_size
    st.subheader("Position embeddings")
    sim = anatomy.position_similarity(model)
    st.plotly_chart(view_charts.map_mosaic(sim, -1, 1, "RdBu_r", height=min(640, 120 + 60 * g)), key="an_pos")
    st.caption(f"Each small map is one patch position of the {g}×{g} grid, coloured by how similar (cosine) "
               "its learned position embedding is to every other position's. A well-trained ViT learns on its "
               "own that neighbouring patches, and patches of the same row or column, belong together.")

    st.subheader("Patch-embedding filters: principal components")
    comps, share = anatomy.patch_components(model, 28)
    st.image(anatomy.mosaic(comps, columns=8, scale=max(8, 64 // p), gap=6),
             caption=" · ".join(f"{100 * s:.0f}%" for s in share[:8]) + " … of the variance (first components)")
    st.caption(f"The {len(comps)} main directions of the linear projection that turns each {p}×{p} patch into a "
               "token, drawn as patches. In the ViT paper they look like a CNN's first filters (edges, blobs, "
               "colour); a small or briefly trained model's are noisier.")

    st.subheader("Mean attention distance")
    dist, n, source = attention_distances(str(run.path.resolve()), views.file_mtime(run, "model.safetensors"))
    st.plotly_chart(view_charts.attention_distance(dist, int(cfg["img_size"])), key="an_dist")
    st.caption(f"How far (in pixels) each head looks on average, over {n} {source}. In the ViT paper some "
               "heads of the first layers already look across the whole image while others stay local, "
               "and the distance grows with depth: a CNN's view, by contrast, only widens layer by layer.")


def cnn(run: Run, model) -> None:
    cfg = run.config()
    st.subheader("First-layer filters")
    filters = anatomy.first_filters(model, 64)
    k = filters.shape[1]
    st.image(anatomy.mosaic(filters, columns=16, scale=max(6, 48 // k), gap=6))
    st.caption(f"The {len(filters)} {k}×{k} filters of the first convolution, each scaled to its own range. "
               "A well-trained CNN's become edge, stripe and colour detectors; tiny 3×3 filters on small "
               "images look like noise more often.")
    st.subheader("Receptive field per stage")
    stages = anatomy.receptive_fields(model, int(cfg["img_size"]))
    st.dataframe([{"stage": s.name, "receptive field (px)": s.receptive_field, "stride (px)": s.stride,
                   "feature map": f"{s.resolution}×{s.resolution}"} for s in stages], hide_index=True)
    st.caption(f"How many input pixels one feature of each stage can see, on {cfg['img_size']}-pixel images: "
               "a CNN sees locally and widens its view stage by stage, where every ViT layer can look "
               "at the whole image.")


def page() -> None:
    st.title("Anatomy")
    run = ui.run_picker("anatomy", help="Any run; the pictures need its trained weights.")
    if run is None:
        navigation.no_runs_hint()
        return
    if not run.has_weights():
        st.info(f"{run.name} has no trained weights yet: the pictures appear after its first epoch.",
                icon=":material/info:")
        return
    loaded = cache.load_model(run)
    st.caption(f"{run.name}: a {'Vision Transformer' if loaded.kind == 'vit' else 'CNN'} on "
               f"{run.config().get('dataset_title') or run.config().get('dataset')}. "
               + ("The analyses of Dosovitskiy et al. 2021 (figure 7)." if loaded.kind == "vit" else
                  "A CNN has no position embeddings or attention: its first filters and receptive fields "
                  "instead (pick a TinyViT run for the ViT paper's pictures)."))
    try:
        with torch.no_grad():
            (vit if loaded.kind == "vit" else cnn)(run, loaded.model)
    except anatomy.AnatomyError as err:
        st.error(f"{run.name}: {err}", icon=":material/error:")


if __name__ == "__main__":
    navigation.run_app()
