import { lazy, Suspense, useEffect, useState } from "react";
import { Link, Redirect, Route, Router, Switch } from "wouter";
import { auth } from "./api";
import { Dashboard } from "./views/Dashboard";
import { DeadLetters } from "./views/DeadLetters";
import { ExecutionDetail } from "./views/ExecutionDetail";
import { Executions } from "./views/Executions";
import { Flows } from "./views/Flows";
import { KV } from "./views/KV";
import { Triggers } from "./views/Triggers";

// The flow page holds the editor (CodeMirror): loaded only when opened.
const FlowPage = lazy(() => import("./views/FlowPage"));

const NAV = [
  ["/dashboard", "Dashboard"],
  ["/flows", "Flows"],
  ["/executions", "Executions"],
  ["/triggers", "Triggers"],
  ["/deadletters", "Dead letters"],
  ["/kv", "KV store"],
] as const;

function TokenPrompt({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState("");
  return (
    <div className="token-overlay">
      <form
        className="token-box"
        onSubmit={(e) => {
          e.preventDefault();
          auth.setToken(token.trim());
          onDone();
        }}
      >
        <h2>API token</h2>
        <p>
          This server needs its API token: <code>kestrel token</code> prints the one it generated (or use the
          token it was started with). It is kept in this browser and sent as a bearer header.
        </p>
        <input aria-label="API token" type="password" value={token} onChange={(e) => setToken(e.target.value)} autoFocus />
        <button type="submit">Continue</button>
      </form>
    </div>
  );
}

export function App() {
  const [asking, setAsking] = useState(false);
  const [generation, setGeneration] = useState(0);
  useEffect(() => auth.onUnauthorized(() => setAsking(true)), []);
  return (
    <Router base="/ui">
      <div className="shell">
        <nav className="sidebar">
          <div className="brand">Kestrel</div>
          {NAV.map(([href, label]) => (
            <Link key={href} href={href} className={(active: boolean) => (active ? "active" : "")}>
              {label}
            </Link>
          ))}
        </nav>
        <main className="content" key={generation}>
          <Suspense fallback={<div className="loading">Loading…</div>}>
            <Switch>
              <Route path="/">{() => <Redirect to="/executions" />}</Route>
              <Route path="/dashboard" component={Dashboard} />
              <Route path="/flows" component={Flows} />
              <Route path="/flows/new">{() => <FlowPage namespace="" id="" />}</Route>
              <Route path="/flows/:namespace/:id">
                {(p: { namespace: string; id: string }) => <FlowPage namespace={p.namespace} id={p.id} />}
              </Route>
              <Route path="/executions" component={Executions} />
              <Route path="/executions/:id">{(p: { id: string }) => <ExecutionDetail id={p.id} />}</Route>
              <Route path="/triggers" component={Triggers} />
              <Route path="/deadletters" component={DeadLetters} />
              <Route path="/kv" component={KV} />
              <Route>
                <h1>Not found</h1>
              </Route>
            </Switch>
          </Suspense>
        </main>
      </div>
      {asking && (
        <TokenPrompt
          onDone={() => {
            setAsking(false);
            setGeneration((g) => g + 1);
          }}
        />
      )}
    </Router>
  );
}
