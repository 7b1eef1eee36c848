import { defineConfig } from "vite";

// Tauri serves ui/dist as `frontendDist`; the app runs under a strict CSP
// (script-src 'self'; style-src 'self'), so nothing may be inlined.
export default defineConfig({
  base: "./",
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: ["es2021", "chrome105", "safari15"],
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    sourcemap: false,
  },
});
