# TinyViT Lab as a Hugging Face Space with the Docker SDK
# (https://huggingface.co/docs/hub/spaces-sdks-docker). README.md's front matter says
# `sdk: docker` and `app_port: 8501`. Build and run locally:
#   docker build -t tinyvit-lab . && docker run -p 8501:8501 tinyvit-lab
# or without Docker: `make space-image` (tools/space_image.sh, with buildah).
#
# The defaults of the two build arguments are what a Space uses. Where Docker Hub or
# PyTorch's index cannot be reached, pass a local base with Python 3.11 and pip
# (BASE_IMAGE) and another index that has torch at requirements.txt's pin (TORCH_INDEX_URL).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist/): the Space trains it offline.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

# Spaces run the container as uid 1000: everything the app writes (runs, the Hub cache)
# lives in that user's home, which it owns.
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    HF_HOME=/home/user/.cache/huggingface \
    TINYVIT_RUNS=/home/user/app/runs \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Made by the user, so the user owns them (WORKDIR alone may create its folder as root).
RUN mkdir -p /home/user/app "$HF_HOME"
WORKDIR /home/user/app

# requirements.txt as pinned; torch and torchvision as CPU builds (2.14.0+cpu satisfies
# ==2.14.0 and ranks above it): a Space has no GPU, and the default wheels pull in ~3 GB of
# CUDA libraries.
COPY --chown=user requirements.txt .
RUN pip install --user --extra-index-url "$TORCH_INDEX_URL" -r requirements.txt

COPY --chown=user . .
RUN mkdir -p "$TINYVIT_RUNS"

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status != 200)"

# Behind the Space's proxy the page is served from another origin (an iframe on
# huggingface.co): with XSRF protection or CORS on, file uploads fail with 403.
CMD ["streamlit", "run", "app.py", \
     "--server.port", "8501", \
     "--server.address", "0.0.0.0", \
     "--server.headless", "true", \
     "--server.enableXsrfProtection", "false", \
     "--server.enableCORS", "false"]
