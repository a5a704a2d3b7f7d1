# syntax=docker/dockerfile:1
# Build: compile TypeScript with the full toolchain.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gen ./gen
COPY src ./src
COPY web ./web
COPY scripts/web.ts scripts/service-bundle.ts ./scripts/
RUN npm run build

# Runtime: production dependencies and the compiled output only, as the unprivileged user.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The web app, served at /app/ (WEB_APP_DIR's default, relative to this folder).
COPY --from=build /app/web/dist ./web/dist
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# As `npm run serve` runs it (package.json; README "Running it in production" says why these).
CMD ["node", "--max-semi-space-size=4", "--max-old-space-size=1024", "--disable-warning=TimeoutNegativeWarning", "dist/service.mjs"]
