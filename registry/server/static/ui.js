// pyrkt registry: small progressive enhancements. Every page works without this script.
"use strict";
document.documentElement.classList.add("js");

// Copy buttons next to commands.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy], button[data-copy-value]");
  if (!button) return;
  // data-copy names the element holding the text; data-copy-value is the text itself (a
  // hash shown shortened in the audit log, whose full value sits next to it).
  const target = button.dataset.copy ? document.getElementById(button.dataset.copy) : button.previousElementSibling;
  const text = button.dataset.copyValue || target.textContent.trim();
  const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
  const fallback = () => {
    if (button.dataset.copyValue) target.textContent = text;  // show it whole, selected
    selectText(target);
    try { document.execCommand("copy"); done(); } catch (_) { /* text stays selected */ }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
});

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

// Confirmation before destructive forms.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Upload: drag-and-drop, progress bar, the server's message shown as sent.
const form = document.getElementById("upload-form");
if (form) enhanceUpload(form);

function enhanceUpload(form) {
  const zone = document.getElementById("dropzone");
  const aci = form.querySelector("#aci");
  const signature = form.querySelector("#signature");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");

  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    for (const file of event.dataTransfer.files) {
      const target = file.name.endsWith(".asc") ? signature : aci;
      const list = new DataTransfer();
      list.items.add(file);
      target.files = list.files;
    }
    status.textContent = aci.files.length ? `Ready: ${aci.files[0].name}` + (signature.files.length ? ` with ${signature.files[0].name}` : "") : "";
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = aci.files[0];
    if (!file) { show("Choose an .aci file first.", true); return; }
    let signatureHeader = null;
    if (signature.files.length) {
      const bytes = new Uint8Array(await signature.files[0].arrayBuffer());
      let binary = "";
      bytes.forEach((b) => { binary += String.fromCharCode(b); });
      signatureHeader = btoa(binary);
    }
    const version = form.querySelector("#version").value.trim();
    const url = form.action + (version ? `?version=${encodeURIComponent(version)}` : "");
    // The raw file is the body, so the server streams it straight into validation.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("input[name=csrf_token]").value);
    if (signatureHeader) xhr.setRequestHeader("X-Pyrkt-Signature", signatureHeader);
    progress.hidden = false;
    progress.value = 0;
    form.querySelector("button[type=submit]").disabled = true;
    show(`Uploading ${file.name}…`, false);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      progress.value = Math.round((e.loaded / e.total) * 100);
      status.textContent = `Uploading ${file.name}… ${progress.value}% of ${megabytes(e.total)}`;
    });
    xhr.upload.addEventListener("load", () => show("Uploaded; the registry is validating and signing it…", false));
    xhr.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (_) { answer = { message: `The registry answered ${xhr.status}.` }; }
      if (xhr.status < 300 && answer.ok) {
        progress.value = 100;
        show(answer.message, false);
        window.location.assign(answer.redirect || window.location.pathname);
      } else {
        fail(answer.message || `Upload failed (${xhr.status}).`);
      }
    });
    xhr.addEventListener("error", () => fail("The connection failed before the registry answered."));
    xhr.send(file);
  });

  function megabytes(bytes) {
    return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
  }

  function fail(message) {
    progress.hidden = true;
    form.querySelector("button[type=submit]").disabled = false;
    show(`Upload refused: ${message}`, true);
  }

  function show(message, isError) {
    status.textContent = message;
    status.className = isError ? "flash error" : "meta";
    status.setAttribute("role", isError ? "alert" : "status");
  }
}
