// Nimbus admin portal: the confirmation dialog and the live parts of the Directory
// Integration tab. The pages work without this script (the server asks for confirmation on
// its own page); with it, confirmations open a dialog and the sync status updates itself.
'use strict';

(function () {
  var dialog = document.getElementById('confirm-dialog');

  /** Opens the confirmation dialog; calls onOk when the user confirms. */
  function confirmThen(text, opener, onOk) {
    if (!dialog || typeof dialog.showModal !== 'function') {
      if (window.confirm(text)) onOk();
      return;
    }
    document.getElementById('confirm-text').textContent = text;
    dialog.returnValue = '';
    dialog.addEventListener(
      'close',
      function () {
        if (dialog.returnValue === 'ok') onOk();
        else if (opener && opener.focus) opener.focus();
      },
      { once: true },
    );
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement) || form.dataset.confirmed === 'yes') return;
    var button = ev.submitter || form.querySelector('button[type="submit"]');
    if (form.id === 'activation-form') {
      var chosen = form.querySelector('input[name="dirsync"]:checked');
      if (!chosen || chosen.value === form.dataset.current) return;
      ev.preventDefault();
      var text = chosen.value === 'activated' ? form.dataset.confirmActivate : form.dataset.confirmDeactivate;
      confirmThen(text, button, function () {
        form.querySelector('input[name="confirmed"]').value = 'yes';
        form.dataset.confirmed = 'yes';
        form.submit();
      });
      return;
    }
    if (form.dataset.confirm) {
      ev.preventDefault();
      confirmThen(form.dataset.confirm, button, function () {
        form.dataset.confirmed = 'yes';
        form.submit();
      });
    }
  });

  // ---- live updates: poll the fragment, swap it in when it changed
  var live = document.getElementById('sync-live');
  if (!live || !live.dataset.liveUrl) return;
  var every = Number(live.dataset.pollMs) || 2000;
  var version = live.dataset.version || '';
  var busy = false;
  function poll() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(live.dataset.liveUrl, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) {
        if (r.status === 401) {
          live.insertAdjacentHTML('afterbegin', '<p class="flash error" role="alert">Your session has ended: reload the page to sign in again.</p>');
          clearInterval(timer);
          return null;
        }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data || data.version === version) return;
        version = data.version;
        var focused = document.activeElement && live.contains(document.activeElement) ? document.activeElement.id : '';
        live.innerHTML = data.html;
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      })
      .catch(function () {
        // The server may be restarting; the next poll tries again.
      })
      .then(function () {
        busy = false;
      });
  }
  var timer = setInterval(poll, every);
  poll();
})();
