// The Waymark dashboard's only script: "Sync now" without leaving the page, with its progress
// polled from the dashboard, and a question before an action that cannot be undone. Every page
// works without it (the forms post and come back).
'use strict';

(function () {
  const form = document.getElementById('sync-form');
  const button = document.getElementById('sync-now');
  const status = document.getElementById('sync-status');
  const bar = document.getElementById('sync-progress');
  let watched = false;

  function show(s) {
    if (s.running) {
      const what = s.phase === 'push' ? 'Sending' : s.phase === 'pull' ? 'Receiving' : 'Syncing';
      status.textContent = s.total > 0 ? what + ': ' + s.done + ' of ' + s.total : what + '…';
      bar.hidden = false;
      if (s.total > 0) {
        bar.max = s.total;
        bar.value = s.done;
      } else {
        bar.removeAttribute('value');
      }
    } else {
      status.textContent = s.summary;
      bar.hidden = true;
    }
    button.disabled = s.running;
  }

  async function poll() {
    const answer = await fetch('/sync/status', { cache: 'no-store' });
    const s = await answer.json();
    show(s);
    if (s.running) {
      watched = true;
      setTimeout(poll, 250);
    } else if (watched) {
      // What arrived shows on the page as it is read again.
      location.reload();
    }
  }

  if (form) {
    form.addEventListener('submit', async function (event) {
      event.preventDefault();
      button.disabled = true;
      status.textContent = 'Syncing…';
      watched = true;
      await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        redirect: 'manual',
      });
      poll();
    });
    if (document.body.dataset.syncing === '1') {
      watched = true;
      poll();
    }
  }

  for (const f of document.querySelectorAll('form[data-confirm]')) {
    f.addEventListener('submit', function (event) {
      if (!window.confirm(f.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
})();
