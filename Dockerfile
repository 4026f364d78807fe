# The gateway image: runs `ige serve`. Redis and the database are external
# (REDIS_URL, DATABASE_URL); keep Redis with `appendonly yes` and `appendfsync always`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY auction ./auction
COPY gateway ./gateway
COPY persistence ./persistence
COPY applications ./applications
RUN pip install . && useradd --create-home --uid 10001 ige
USER ige

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["ige", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
