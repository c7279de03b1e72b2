# ccproxy-server with the OpenAI provider plugin. Build: docker build -t ccproxy .
# Run: docker run --rm -p 11434:11434 -e OPENAI_API_KEY=sk-... ccproxy
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml setup.py sanic_config.py README.md plugins.toml ./
COPY ccproxy ./ccproxy
COPY plugins ./plugins
RUN pip install . ./plugins/ccproxy-openai ./plugins/ccproxy-guardrails && apt-get purge -y gcc libc6-dev && apt-get autoremove -y

RUN useradd --create-home ccproxy
USER ccproxy
ENV HOST=0.0.0.0 PORT=11434
EXPOSE 11434
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/')"
CMD ["ccproxy", "serve"]
