# faye serve in a container. Build: docker build -t faye-redis-ng .
# Run:   docker run -p 8000:8000 -e FAYE_REDIS_URL=redis://redis:6379/0 faye-redis-ng
# Every option has an environment variable (README, "Serving"); --build-arg EXTRAS= builds
# an image without the Redis engine.

FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ARG EXTRAS=redis
COPY constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir -c /tmp/constraints.txt "$(ls /wheels/*.whl)${EXTRAS:+[$EXTRAS]}" \
    && rm /tmp/constraints.txt \
    && useradd --system --no-create-home --shell /usr/sbin/nologin faye
USER faye
ENV FAYE_HOST=0.0.0.0 \
    FAYE_PORT=8000 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# A held /meta/connect ends within --timeout (25 s): give `docker stop` longer than that
# (compose.yaml: stop_grace_period) so that a stop drains instead of cutting it.
CMD ["faye", "serve"]
