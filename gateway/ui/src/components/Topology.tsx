import { useMemo } from "react";
import { layoutTopology } from "../lib/topology";
import type { FlowJson } from "../api";

const FILL: Record<string, string> = { task: "#eef4ff", trigger: "#fff4e0", start: "#e8f7ee", end: "#e8f7ee", group: "#f4f4f4" };

/** The flow drawn as a graph laid out by dagre. */
export function Topology({ flow }: { flow: FlowJson }) {
  const topo = useMemo(() => layoutTopology(flow), [flow]);
  return (
    <div className="topology">
      <svg width={topo.width} height={topo.height} role="img" aria-label="flow topology">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#8a94a6" />
          </marker>
        </defs>
        {topo.edges.map((e, i) => (
          <g key={i}>
            <polyline
              points={e.points.map((p) => `${p.x},${p.y}`).join(" ")}
              fill="none"
              stroke={e.label === "errors" ? "#d64545" : e.label === "finally" ? "#a58bd8" : "#8a94a6"}
              strokeWidth={1.5}
              markerEnd="url(#arrow)"
            />
            {e.label && e.points.length > 1 && (
              <text x={e.points[1].x} y={e.points[1].y - 4} className="edge-label">
                {e.label}
              </text>
            )}
          </g>
        ))}
        {topo.nodes.map((n) => (
          <g key={n.id} transform={`translate(${n.x},${n.y})`} data-node={n.id}>
            <rect width={n.width} height={n.height} rx={6} fill={FILL[n.kind]} stroke="#9aa5b8" />
            <text x={8} y={18} className="node-label">
              {n.label}
            </text>
            <text x={8} y={34} className="node-type">
              {n.type}
            </text>
          </g>
        ))}
      </svg>
    </div>
  );
}
