// The aicn console: one page, its views named by the URL's #fragment (so /console serves every view).
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { closeSocket, gql } from "./api";
import { Centers } from "./Centers";
import { money } from "./format";
import { JobPage } from "./JobPage";
import { Jobs } from "./Jobs";
import { VIEWER } from "./queries";
import { savedToken, signOut } from "./session";
import { Services } from "./Services";
import { SignIn } from "./SignIn";
import { Submit } from "./Submit";
import type { Money } from "./types";
import { Usage } from "./Usage";
import "./style.css";

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    window.addEventListener("aicn:session", changed);
    return () => {
      window.removeEventListener("hashchange", changed);
      window.removeEventListener("aicn:session", changed);
    };
  }, []);
  return hash;
}

function View({ hash }: { hash: string }) {
  const job = /^#\/jobs\/(.+)$/.exec(hash);
  if (job) return <JobPage id={decodeURIComponent(job[1])} />;
  if (hash === "#/submit") return <Submit />;
  if (hash === "#/centers") return <Centers />;
  if (hash === "#/services") return <Services />;
  if (hash === "#/usage") return <Usage />;
  return <Jobs />;
}

function App() {
  const hash = useHash();
  const [viewer, setViewer] = useState<{ name: string; available: Money } | null>(null);
  const token = savedToken();

  useEffect(() => {
    if (!token) {
      closeSocket();
      setViewer(null);
      return;
    }
    gql<{ viewer: { name: string; available: Money } }>(VIEWER)
      .then((data) => setViewer(data.viewer))
      .catch(() => undefined);
  }, [token]);

  if (!token || hash === "#/signin") {
    return <SignIn onSignedIn={() => (window.location.hash = "#/jobs")} />;
  }
  const current = (name: string) => (hash.startsWith(`#/${name}`) || (name === "jobs" && (hash === "" || hash === "#/")) ? "active" : "");
  return (
    <>
      <nav className="top">
        <strong className="brand">aicn</strong>
        <a className={current("jobs")} href="#/jobs">
          Jobs
        </a>
        <a className={current("submit")} href="#/submit">
          Submit
        </a>
        <a className={current("centers")} href="#/centers">
          Centers
        </a>
        <a className={current("services")} href="#/services">
          Inference services
        </a>
        <a className={current("usage")} href="#/usage">
          Usage &amp; bills
        </a>
        <span className="spacer" />
        {viewer && (
          <span className="viewer">
            {viewer.name} · {money(viewer.available)} available
          </span>
        )}
        <a href="/graphql">GraphiQL</a>
        <button type="button" className="link" onClick={() => signOut("")}>
          Sign out
        </button>
      </nav>
      <main>
        <View hash={hash} />
      </main>
    </>
  );
}

const root = document.getElementById("console");
if (root) createRoot(root).render(<App />);
