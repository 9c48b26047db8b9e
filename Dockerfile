FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# CPU build of torch first, so the dependency resolution below does not pull a CUDA build
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY leadpilot leadpilot
COPY agents agents
COPY tools tools
COPY knowledge knowledge
COPY services services
COPY models models
COPY channels channels
COPY api api
COPY workers workers
COPY evals evals
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["leadpilot", "serve", "--host", "0.0.0.0", "--port", "8000"]
