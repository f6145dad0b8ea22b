import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** A uPlot chart; re-created when `options` change, data updated in place. */
export function Chart({ options, data, label }: { options: uPlot.Options; data: uPlot.AlignedData; label: string }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    plot.current = new uPlot(options, data, host.current!);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [options]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return <div className="chart" ref={host} role="img" aria-label={label} />;
}

export const bars = uPlot.paths.bars!({ size: [0.8, 60] });
