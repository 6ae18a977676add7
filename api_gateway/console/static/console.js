// The console works without this file; with it, pages refresh their live parts, a secret shown
// once has a copy button, and reloading such a page does not post its form again.
"use strict";

// Swap each [data-live] region for the server's current one every few seconds while visible, and
// drop each [data-live-drop] part the server no longer renders (an incident's actions once it is
// resolved). Those parts are never swapped: a note being typed and a form's one-time key stay.
const LIVE_SECONDS = 2;
async function refreshLive() {
  if (document.hidden) return;
  const regions = document.querySelectorAll("[data-live]");
  if (!regions.length) return;
  let response;
  try {
    response = await fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
  } catch {
    return;  // offline for a moment: try again next time
  }
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const updates = fresh.querySelectorAll("[data-live]");
  regions.forEach((region, i) => {
    if (updates[i] && updates[i].innerHTML !== region.innerHTML) region.innerHTML = updates[i].innerHTML;
  });
  document.querySelectorAll("[data-live-drop]").forEach((part) => {
    if (!fresh.getElementById(part.id)) part.remove();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.querySelector("[data-live]")) setInterval(refreshLive, LIVE_SECONDS * 1000);

  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy by hand";
      }
    });
  });

  // A page that showed a secret after a post: a reload fetches the page anew instead of posting.
  if (document.querySelector("[data-forget-post]")) history.replaceState(null, "", location.pathname);
});
