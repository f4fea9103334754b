# satcli in a container: docker build -t satcli . && docker run --rm satcli analyze sample_models/sensible.pt2
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY satcli ./satcli
COPY sample_models ./sample_models
RUN pip install --no-cache-dir .
ENV SATCLI_DATA_ROOT=/data
ENTRYPOINT ["satcli"]
CMD ["--help"]
