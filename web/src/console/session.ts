// The token lives in this tab's sessionStorage only: closing the tab signs out, nothing is written to disk.
const KEY = "aicn.token";
const REASON = "aicn.signedOutBecause";

export function savedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(token: string): void {
  sessionStorage.setItem(KEY, token);
  sessionStorage.removeItem(REASON);
}

/** Forget the token; the sign-in page then shows why. */
export function signOut(reason: string): void {
  sessionStorage.removeItem(KEY);
  if (reason) sessionStorage.setItem(REASON, reason);
  else sessionStorage.removeItem(REASON);
  window.location.hash = "#/signin";
  window.dispatchEvent(new Event("aicn:session"));
}

export function signedOutBecause(): string | null {
  return sessionStorage.getItem(REASON);
}
