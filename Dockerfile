# recaptcha-sidecar container image.
#   docker build -t recaptcha-sidecar:0.1.0 .
#   docker run --rm --read-only recaptcha-sidecar:0.1.0 serve --emulator --listen 127.0.0.1:50051
# Build stage: a virtual environment from requirements.lock (wheels only, hashes checked) plus
# the sidecar's own wheel (with the generated Python stubs inside), made by
# scripts/image-install.sh, the same script the test suite runs
# (tests/deploy/test_image_install.py). Runtime stage: that environment and nothing else:
# no compilers, no pip in the environment, a numeric non-root user, state only under volumes,
# so it runs with a read-only root file system.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock pyproject.toml README.md VERSION ./
COPY scripts/image-install.sh scripts/
COPY clients/python/src clients/python/src
COPY sidecar sidecar
RUN bash scripts/image-install.sh /opt/recaptcha-sidecar /src \
 && /opt/recaptcha-sidecar/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/recaptcha-sidecar/lib

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="recaptcha-sidecar" \
      org.opencontainers.image.description="A gRPC sidecar that verifies reCAPTCHA Enterprise tokens for apps in any language." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# 65532: the conventional "nonroot" id; no name is needed, Kubernetes checks the number.
RUN install -d -o 65532 -g 65532 -m 0770 /run/recaptcha /var/lib/recaptcha-sidecar
COPY --from=build /opt/recaptcha-sidecar /opt/recaptcha-sidecar
ENV PATH=/opt/recaptcha-sidecar/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/recaptcha-sidecar
WORKDIR /var/lib/recaptcha-sidecar
USER 65532:65532
# /run/recaptcha: the Unix socket shared with the app; /var/lib/recaptcha-sidecar: local state
# (the annotation outbox). Mount emptyDirs there when the root file system is read-only.
VOLUME ["/run/recaptcha", "/var/lib/recaptcha-sidecar"]
# 50051: the API on loopback (inside the pod); 8086: health only, for kubelet's gRPC probes.
EXPOSE 8086
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/recaptcha-sidecar/bin/recaptcha-sidecar"]
CMD ["serve", "--listen", "unix:///run/recaptcha/sidecar.sock", "--listen", "127.0.0.1:50051", "--health-listen", "0.0.0.0:8086"]
