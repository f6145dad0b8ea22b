/** Small formatting helpers shared by the views. */

export const TERMINAL = new Set(["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"]);

export const STATE_COLORS: Record<string, string> = {
  CREATED: "#8a94a6",
  QUEUED: "#a58bd8",
  RUNNING: "#2f80ed",
  PAUSED: "#f2a900",
  RETRYING: "#f2994a",
  KILLING: "#eb5757",
  SUCCESS: "#27ae60",
  WARNING: "#e2b93b",
  FAILED: "#d64545",
  KILLED: "#9b2c2c",
  CANCELLED: "#6b7280",
  SKIPPED: "#b0b7c3",
};

export function stateColor(state: string): string {
  return STATE_COLORS[state] ?? "#8a94a6";
}

/** Milliseconds as a short human duration: 850ms, 12.3s, 4m 05s, 2h 03m. */
export function formatMillis(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

/** Seconds as milliseconds text with two decimals (latencies). */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "–";
  return `${(seconds * 1000).toFixed(2)} ms`;
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Bytes from base64, shown as hex: "7b 22 61 ..." in rows of 16. */
export function hexDump(base64: string, limit = 512): string {
  const raw = atob(base64);
  const rows: string[] = [];
  for (let offset = 0; offset < Math.min(raw.length, limit); offset += 16) {
    const bytes = Array.from(raw.slice(offset, offset + 16), (c) =>
      c.charCodeAt(0).toString(16).padStart(2, "0"),
    );
    rows.push(`${offset.toString(16).padStart(6, "0")}  ${bytes.join(" ")}`);
  }
  return rows.join("\n");
}

/** The payload pretty-printed when it is JSON, else null. */
export function prettyJson(text: string): string | null {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}
