const run = JSON.parse(document.getElementById('run-data').textContent);
const svg = document.querySelector('svg.lamport:not(.header)');
const detail = document.getElementById('detail');
function cell(row, text) { const td = document.createElement('td'); td.textContent = text; row.appendChild(td); }
function show(index) {
  const f = run.frames[index];
  detail.replaceChildren();
  const head = document.createElement('h3');
  head.textContent = `${f.type}: ${f.from} → ${f.to}, ${f.size} bytes`;
  const when = document.createElement('p');
  when.textContent = `read by the relay at ${f.sent.toFixed(3)} s, sent on at ${f.time.toFixed(3)} s`;
  const summary = document.createElement('pre');
  summary.textContent = f.summary;
  const link = document.createElement('a');
  link.href = run.docs + f.anchor;
  link.textContent = `${f.type} on the protocol page`;
  detail.append(head, when, summary, link);
  if (f.table) {
    const table = document.createElement('table');
    table.className = 'bytes';
    for (const r of f.table) { const row = table.insertRow(); for (const c of r) cell(row, String(c)); }
    detail.append(table);
  } else {
    const raw = document.createElement('p');
    raw.textContent = `bytes (start): ${f.hex || ''}: python -m vistrit decode HEX gives the table`;
    detail.append(raw);
  }
}
svg.addEventListener('click', (event) => {
  const line = event.target.closest('line.frame');
  if (!line) return;
  for (const old of svg.querySelectorAll('.chosen')) old.classList.remove('chosen');
  line.classList.add('chosen');
  show(Number(line.dataset.i));
});
for (const box of document.querySelectorAll('input[data-family]')) {
  box.addEventListener('change', () => svg.classList.toggle('hide-' + box.dataset.family, !box.checked));
}
