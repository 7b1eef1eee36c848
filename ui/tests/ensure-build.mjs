// Builds ui/dist when it is missing or older than any source file (used by `npm test`).
import fs from "node:fs";
import path from "node:path";
import { execSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "dist", "index.html");

function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...fs.readdirSync(p).map((f) => newest(path.join(p, f))));
}

const inputs = ["src", "public", "index.html", "vite.config.ts", "tsconfig.json", "package.json"].map((f) => path.join(root, f)).filter((f) => fs.existsSync(f));
const stale = !fs.existsSync(out) || Math.max(...inputs.map(newest)) > fs.statSync(out).mtimeMs || process.env.FORCE_BUILD === "1";
if (stale) {
  console.log("ui: building dist/ …");
  execSync("npm run build", { cwd: root, stdio: "inherit" });
} else {
  console.log("ui: dist/ is up to date");
}
