# satcli in a container (docs/development.md, "Docker"): docker build -t satcli . && docker run --rm satcli --help
# .ci/docker-steps runs these steps as written in a fresh virtual environment, so CI catches a broken step.
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY satcli ./satcli
COPY sample_models ./sample_models
# Hugging Face models, data sets and timm architectures; build with --build-arg EXTRAS= for a smaller image.
ARG EXTRAS=hf,timm
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"
ENV SATCLI_DATA_ROOT=/data
ENTRYPOINT ["satcli"]
CMD ["--help"]
