# The axis as a container image:  docker build -t axis .   (or: podman build -t axis .)
#
# Two stages. The first builds the axis wheel from this checkout and installs it, with its
# pinned dependencies, into a virtual environment at /opt/axis. The second is the same slim
# Debian Python base with that environment copied in, and nothing else: no compiler, no
# pip cache, no source tree. python-xmlsec and lxml come as manylinux wheels that carry
# their C libraries (libxmlsec1 with its OpenSSL back end, libxml2, libxslt) linked in, so
# the runtime needs no system packages beyond the base; a platform without such wheels
# fails the build (--only-binary) instead of compiling a mismatched pair.
#
# Run:  docker run -d -p 8080:8080 -v axis-data:/var/lib/axis axis
# The data directory is the volume /var/lib/axis (serve prepares it on first start);
# `docker exec CONTAINER axis token issue --role admin` prints an admin token.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/build \
    && /opt/build/bin/pip install build==1.6.1 \
    && /opt/build/bin/python -m build --wheel --outdir /dist . \
    && python3 -m venv /opt/axis \
    && /opt/axis/bin/pip install --only-binary=:all: /dist/axis-*.whl \
    && /opt/axis/bin/axis --version

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 axis \
    && useradd --system --uid 10001 --gid axis --home-dir /var/lib/axis --no-create-home \
        --shell /usr/sbin/nologin axis \
    && install -d -o axis -g axis -m 0700 /var/lib/axis
COPY --from=build /opt/axis /opt/axis
ENV PATH=/opt/axis/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AXIS_DATA=/var/lib/axis \
    AXIS_HOST=0.0.0.0 \
    AXIS_PORT=8080
USER axis
WORKDIR /var/lib/axis
VOLUME ["/var/lib/axis"]
EXPOSE 8080
# Ready: the store takes a write, the disk has room, the signing key is loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python3 -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('AXIS_PORT', '8080'), timeout=4)"
# SIGTERM (docker stop): stop taking connections, finish the requests in flight, sign a
# last audit checkpoint, exit 0. Give it the time: docker stop --time 90.
STOPSIGNAL SIGTERM
ENTRYPOINT ["axis"]
CMD ["serve"]
