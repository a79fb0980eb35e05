# One image for every worker; the worker name is the command:
#   docker run IMAGE capture | persons | writer | query | migrate
# the web app, served by the query API from web/dist
FROM node:22-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web ./
RUN npm run build

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workers ./workers
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 analytics
COPY --from=build /install /usr/local
WORKDIR /app
COPY sql ./sql
COPY workers ./workers
COPY config ./config
COPY --from=web /web/dist ./web/dist
USER analytics
ENV PYTHONUNBUFFERED=1 CLICKHOUSE_URL=chdb:///home/analytics/chdb \
    CAPTURE_HOST=0.0.0.0 QUERY_HOST=0.0.0.0 METRICS_HOST=0.0.0.0
EXPOSE 8000 8001 9100 9101 9102 9103 9104
ENTRYPOINT ["python", "-m", "workers"]
CMD ["capture"]
