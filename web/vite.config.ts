import { defineConfig } from "vite";
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
  },
});
