import { defineConfig } from "vitest/config";
import preact from "@preact/preset-vite";

export default defineConfig({
  base: "/",
  plugins: [preact()],
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8001" },
    },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // ECharts (line, bar, heatmap, sankey) is its own lazily loaded chunk of about 620 kB (210 kB gzip);
    // the app chunk stays small. Warn only past that.
    chunkSizeWarningLimit: 700,
  },
  // the unit tests; e2e/ holds the browser tests, which need the stack (tests/browser/test_web.py)
  test: { include: ["src/**/*.test.ts"] },
});
