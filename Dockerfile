# One image for every role (ROLE=all|ingest|aggregate|api); see docs/deploy.md.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system memetrade
USER memetrade
ENV HOST=0.0.0.0 PORT=3000
EXPOSE 3000
CMD ["memetrade", "serve"]
