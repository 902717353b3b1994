# One image: the web app (gunicorn), the Celery workers and beat. Label Studio runs from its own image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=alweb.settings.production MLFLOW_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1 \
    ALWEB_VAR_DIR=/var/lib/alweb

RUN apt-get update && apt-get install -y --no-install-recommends libpq5 && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 alweb && mkdir -p /var/lib/alweb && chown alweb /var/lib/alweb

WORKDIR /app
COPY requirements.txt constraints.txt ./
# The CPU build of torch by default: an unpinned torch would pull several GB of CUDA libraries. The GPU workers'
# image (compose's worker-gpu) is built with TORCH_INDEX=https://download.pytorch.org/whl/cu126: the same torch
# version with CUDA.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url "$TORCH_INDEX" \
    && pip install -r requirements.txt -c constraints.txt

COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only-0123456789abcdef0123456789 python manage.py collectstatic --noinput

USER alweb
EXPOSE 8000
CMD ["gunicorn", "alweb.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
