# ww_ray on the official Ray image: one image for the Ray head, the workers and the job driver.
#
#   docker build -t ww-ray:2.60.0-cpu .
#   docker build -t ww-ray:2.60.0-cu128 --build-arg RAY_IMAGE_SUFFIX=-cu128 --build-arg TORCH_CHANNEL=cu128 .
#
# RAY_VERSION must equal the ray pin in pyproject.toml, and every node of a cluster must run the
# same Ray and Python (tests/test_deploy_files.py checks the pin). No secret goes into the image:
# RAY_AUTH_TOKEN, HF_TOKEN and storage credentials come from the environment at run time (deploy/).
ARG RAY_VERSION=2.60.0
# CPU image: empty suffix; CUDA images: -gpu or a CUDA-specific tag such as -cu128 (published per Ray release)
ARG RAY_IMAGE_SUFFIX=
FROM rayproject/ray:${RAY_VERSION}-py311${RAY_IMAGE_SUFFIX}

ARG RAY_VERSION
# PyTorch wheel channel: cpu (about 200 MB) or a CUDA one such as cu128 (matching the base image's CUDA)
ARG TORCH_CHANNEL=cpu

# The base image's non-root user `ray` (uid 1000, gid 100 `users`) owns its Python under
# /home/ray/anaconda3. Numeric, so that Kubernetes `runAsNonRoot` can verify it.
USER 1000:100
WORKDIR /home/ray/ww_ray
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# PyTorch from the chosen channel first, so that installing ww_ray does not pull the default (CUDA) wheel.
RUN pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_CHANNEL}" \
        "torch>=2.4,<=2.14.1" "torchvision>=0.19"

COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 ww_ray ./ww_ray
# Ray is already installed at the pinned version, so pip leaves it (and the image's CUDA stack) alone.
RUN pip install --no-cache-dir . \
    && python -c "import ray, ww_ray; assert ray.__version__ == '${RAY_VERSION}', ray.__version__" \
    && ww-ray --help > /dev/null

# Job entrypoints and sweep configs, for `ray job submit` / KubeRay RayJob entrypoints without a working dir.
COPY --chown=1000:100 jobs ./jobs
COPY --chown=1000:100 configs ./configs

CMD ["ww-ray", "--help"]
