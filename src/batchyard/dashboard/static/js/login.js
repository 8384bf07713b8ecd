// Sign in with an API key: POST /api/v1/session sets the session cookie, then on to where the user was going.
import { $, api } from "./core.js";

const form = $("#login-form");
const error = $("#login-error");
const key = $("#api-key");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = key.value.trim();
  if (!value) {
    error.textContent = "Paste an API key (it starts with by_).";
    error.hidden = false;
    key.setAttribute("aria-invalid", "true");
    key.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    await api("/api/v1/session", { method: "POST", body: { api_key: value } });
    location.assign(form.elements.next.value || "/");
  } catch (failure) {
    error.textContent = failure.status === 401 ? "That key is not valid, or it was revoked. Check it and try again." : failure.message;
    error.hidden = false;
    key.setAttribute("aria-invalid", "true");
    key.select();
    button.disabled = false;
    button.textContent = "Sign in";
  }
});
key.focus();
