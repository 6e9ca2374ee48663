# One image for every dynoscaler process; the command picks the part.
FROM python:3.11-slim
WORKDIR /app
COPY setup.py pyproject.toml README.md ./
COPY dynoscaler dynoscaler
COPY exporter exporter
COPY scaler scaler
RUN pip install --no-cache-dir . && useradd --system dynoscaler \
    && mkdir -p /var/lib/dynoscaler && chown dynoscaler /var/lib/dynoscaler
USER dynoscaler
ENTRYPOINT ["dynoscaler"]
