# callrelay as a container: built from the npm package exactly as published (npm pack), run as
# the unprivileged "node" user, everything it keeps under the /data volume.
#
#   docker build -t callrelay .
#   docker run --rm -v callrelay:/data callrelay init --yes --dir /data --pbx 3cx --crm hubspot \
#     --url https://relay.example.com
#   docker run -d --name callrelay -v callrelay:/data -p 8080:8080 callrelay
#
# See docs/production.md.

FROM node:20.20-bookworm-slim AS build
# better-sqlite3 compiles its binding when no prebuilt one can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY adapters ./adapters
COPY config ./config
COPY console ./console
COPY deploy ./deploy
COPY relay.yaml README.md ./
# A clean install (its prepare script builds dist/), then the package as npm would publish it:
# the same npm pack as test/e2e/package.test.ts.
RUN npm ci --no-audit --no-fund \
 && npm pack --ignore-scripts --pack-destination /tmp
WORKDIR /app
# The package and its production dependencies only, pinned by the project's lockfile (scripts
# off: the package's own prepare would build again; the SQLite binding is built on its own).
# The build leaves dist/main.js executable and npm pack keeps that; the chmod makes sure of it,
# since `docker exec callrelay callrelay calls` runs the unpacked file directly.
RUN tar -xzf /tmp/callrelay-*.tgz --strip-components=1 \
 && chmod 0755 dist/main.js \
 && cp /src/package-lock.json . \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 \
 && npm cache clean --force

FROM node:20.20-bookworm-slim
ENV NODE_ENV=production \
    RELAY_CONFIG=/data/relay.yaml \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
COPY --from=build /app /app
RUN mkdir /data && chown node:node /data \
 && ln -s /app/dist/main.js /usr/local/bin/callrelay
USER node
VOLUME /data
EXPOSE 8080
# /healthz answers while the process is up (plain HTTP; with server.tls, override this check).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["start"]
