# The origin: Node 20 with Debian's FFmpeg, and jemalloc, which npm start (scripts/start.sh) preloads.
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libjemalloc2 ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY player ./player
COPY scripts/start.sh ./scripts/
COPY tsconfig.json ./
ENV HOST=0.0.0.0 HTTP_PORT=8080 RTMP_PORT=1935 DATA_DIR=/data
VOLUME /data
EXPOSE 8080 1935
CMD ["npm", "start"]
