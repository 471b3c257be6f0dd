# TinyViT Lab as a Hugging Face Space with the Docker SDK
# (https://huggingface.co/docs/hub/spaces-sdks-docker). README.md's front matter says
# `sdk: docker` and `app_port: 8501`. Build and run locally:
#   docker build -t tinyvit-lab . && docker run -p 8501:8501 tinyvit-lab
FROM python:3.11-slim

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
RUN pip install --user --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

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
