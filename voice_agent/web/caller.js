// Caller page: one WebRTC call to the assistant with live captions, mood and a DTMF keypad.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { pc: null, dc: null, stream: null, started: 0, timer: null, callId: null, agentLine: null };
  window.voiceCall = state; // tests and the widget read the call's state here

  function setStatus(text) { $("status").textContent = text; }
  function showMessage(text) { const m = $("message"); m.textContent = text; m.hidden = !text; }

  function addLine(speaker, text) {
    const p = document.createElement("p");
    p.className = "line " + speaker;
    const who = document.createElement("b");
    who.textContent = speaker === "caller" ? "You" : speaker === "human" ? "Agent" : "Assistant";
    p.append(who, document.createTextNode(" " + text));
    $("captions").append(p);
    $("captions").scrollTop = $("captions").scrollHeight;
    return p;
  }

  function setMood(label) {
    const m = $("mood");
    m.className = "mood " + label;
    m.textContent = label;
  }

  function onEvent(ev) {
    switch (ev.type) {
      case "greeting": case "transfer_message": case "reprompt_message": case "goodbye":
        addLine("agent", ev.text); break;
      case "partial": $("partial").textContent = ev.text ? "… " + ev.text : ""; break;
      case "caller_turn": $("partial").textContent = ""; addLine("caller", ev.text); state.agentLine = null; break;
      case "agent_partial":
        if (!state.agentLine) state.agentLine = addLine("agent", "");
        state.agentLine.lastChild.textContent = " " + ev.text; break;
      case "agent_text":
        if (!state.agentLine) state.agentLine = addLine("agent", "");
        state.agentLine.lastChild.textContent = " " + ev.text; state.agentLine = null; break;
      case "sentiment": setMood(ev.label || "neutral"); break;
      case "waiting": setStatus("On hold for an agent"); break;
      case "human_text": addLine("human", ev.text); break;
      case "takeover": setStatus("Talking to " + (ev.agent || "an agent")); addLine("human", "(joined the call)"); break;
      case "released": setStatus("Connected"); break;
      case "hangup": setStatus("Call ending"); break;
      case "call_end": finish("Call ended"); break;
    }
  }

  async function call() {
    showMessage("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showMessage("This browser cannot use a microphone here (a secure https:// page or localhost is needed).");
      return;
    }
    $("call").disabled = true;
    setStatus("Asking for the microphone…");
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (err) {
      $("call").disabled = false;
      setStatus("Ready");
      if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) {
        showMessage("The microphone is blocked. Allow microphone access for this site (the icon in the address bar) and press Call again.");
      } else if (err && err.name === "NotFoundError") {
        showMessage("No microphone was found. Plug one in and press Call again.");
      } else {
        showMessage("The microphone could not be opened: " + (err && err.message ? err.message : err));
      }
      return;
    }
    setStatus("Connecting…");
    const base = window.VOICE_AGENT_BASE || "";
    let iceServers = [];
    try { iceServers = (await (await fetch(base + "/api/webrtc/config")).json()).ice_servers || []; } catch (e) { /* host candidates only */ }
    const pc = new RTCPeerConnection({ iceServers });
    state.pc = pc;
    state.stream.getTracks().forEach((t) => pc.addTrack(t, state.stream));
    const dc = pc.createDataChannel("events");
    state.dc = dc;
    dc.onmessage = (m) => { try { onEvent(JSON.parse(m.data)); } catch (e) { /* ignore malformed */ } };
    pc.ontrack = (e) => { $("remote").srcObject = e.streams[0] || new MediaStream([e.track]); };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") {
        setStatus("Connected");
        state.started = Date.now();
        state.timer = setInterval(tick, 500);
      } else if (pc.connectionState === "failed") {
        showMessage("The connection failed. Check your network (a firewall may block the call) and try again.");
        finish("Connection failed");
      } else if (pc.connectionState === "disconnected") {
        setStatus("Reconnecting…");
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceDone(pc);
      const res = await fetch(base + "/api/webrtc/offer", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type,
                               customer_ref: new URLSearchParams(location.hash.slice(1)).get("ref") || undefined }),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(body.error || ("the server answered " + res.status));
      state.callId = body.call_id;
      await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
      $("hangup").disabled = false;
    } catch (err) {
      showMessage("The call could not be started: " + (err && err.message ? err.message : err));
      finish("Ready");
    }
  }

  function iceDone(pc) {
    // Non-trickle signalling: wait for the candidates, but never more than 2 s.
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const t = setTimeout(resolve, 2000);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
      });
    });
  }

  function tick() {
    const s = Math.floor((Date.now() - state.started) / 1000);
    $("timer").textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function send(obj) { if (state.dc && state.dc.readyState === "open") state.dc.send(JSON.stringify(obj)); }

  function finish(text) {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    if (state.pc) { state.pc.close(); state.pc = null; }
    if (state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
    state.ended = true;
    $("call").disabled = false;
    $("hangup").disabled = true;
    setStatus(text);
  }

  function hangup() { send({ type: "hangup" }); setTimeout(() => finish("Call ended"), 300); }

  $("call").addEventListener("click", call);
  $("hangup").addEventListener("click", hangup);
  $("keypad").addEventListener("click", (e) => {
    if (e.target.tagName !== "BUTTON") return;
    send({ type: "dtmf", digit: e.target.textContent });
  });
})();
