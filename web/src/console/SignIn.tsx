import { useState, type FormEvent } from "react";
import { gql } from "./api";
import { VIEWER } from "./queries";
import { signIn, signOut, signedOutBecause } from "./session";

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(signedOutBecause());

  async function submit(event: FormEvent) {
    event.preventDefault();
    signIn(token.trim());
    try {
      await gql(VIEWER);
      onSignedIn();
    } catch (failure) {
      signOut((failure as Error).message);
      setError((failure as Error).message);
    }
  }

  return (
    <main className="signin">
      <form onSubmit={submit} className="card">
        <h1>aicn console</h1>
        <p>Sign in with an API token (an operator gives you one: <code>aicn tokens create</code>). It is kept in this tab only.</p>
        {error && (
          <p className="error" role="alert">
            Signed out: {error}
          </p>
        )}
        <label>
          Token
          <input name="token" type="password" autoComplete="off" value={token} onChange={(event) => setToken(event.target.value)} placeholder="aicn_…" required />
        </label>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
