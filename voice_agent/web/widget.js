// Embeddable call button: <script src="https://support.example.com/widget.js"></script> adds a
// floating "Call us" button that opens the caller page of the server the script came from.
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src).origin : "";
  var label = (script && script.getAttribute("data-label")) || "Call us";
  // A signed customer reference from the site's backend (data-customer-ref="C-1001.<hmac>"): the assistant greets
  // the signed-in customer by name. It travels in the fragment, which never reaches a server's access log.
  var ref = script && script.getAttribute("data-customer-ref");
  var btn = document.createElement("button");
  btn.type = "button";
  btn.textContent = "\u260E " + label;
  btn.setAttribute("aria-label", label);
  btn.style.cssText = "position:fixed;right:20px;bottom:20px;z-index:2147483647;padding:12px 18px;border:0;" +
    "border-radius:999px;background:#2457d6;color:#fff;font:600 15px system-ui,sans-serif;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25)";
  var frame = null;
  btn.addEventListener("click", function () {
    if (frame) { frame.remove(); frame = null; btn.textContent = "\u260E " + label; return; }
    frame = document.createElement("iframe");
    frame.src = base + "/" + (ref ? "#ref=" + encodeURIComponent(ref) : "");
    frame.title = "Call support";
    frame.allow = "microphone; autoplay";
    frame.style.cssText = "position:fixed;right:20px;bottom:76px;width:380px;height:600px;max-height:80vh;" +
      "border:1px solid #d0d5dd;border-radius:12px;background:#fff;z-index:2147483647;box-shadow:0 8px 30px rgba(0,0,0,.25)";
    document.body.appendChild(frame);
    btn.textContent = "\u2715 Close";
  });
  function add() { document.body.appendChild(btn); }
  if (document.body) add(); else document.addEventListener("DOMContentLoaded", add);
})();
