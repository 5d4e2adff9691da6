# mpcgate gateway (and dealer) image, built from the lock file: the same pinned
# dependencies as scripts/install.sh (CPU torch, CrypTen without its deps).
#   docker build -t mpcgate .
#   docker run --rm -v $PWD/bank-a:/srv/mpcgate -p 7000:7000 mpcgate serve --config /srv/mpcgate/gateway.toml
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /opt/mpcgate
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY mpc ./mpc
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --system --home /srv/mpcgate mpcgate
USER mpcgate
WORKDIR /srv/mpcgate
EXPOSE 7000
ENTRYPOINT ["mpcgate"]
CMD ["serve", "--config", "/srv/mpcgate/gateway.toml"]
