// The DLLM chat page: a conversation over this server's OpenAI-compatible API
// (streamed chat completions) and a view of the network (GET /dllm/network).
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
	messages: [],
	busy: false,
	token: { symbol: 'DLLM', decimals: 12 },
	// Kept for this tab's session only, not on the disk of a shared machine.
	key: sessionStorage.getItem('dllm.apiKey') || '',
};

function headers() {
	const h = { 'Content-Type': 'application/json' };
	if (state.key) h.Authorization = `Bearer ${state.key}`;
	return h;
}

/** An API error's message, from OpenAI's error shape or the status line. */
async function failure(response) {
	let message = `${response.status} ${response.statusText}`;
	try {
		const body = await response.json();
		if (body.error && body.error.message) message = body.error.message;
	} catch (_) { /* not JSON */ }
	if (response.status === 401) $('api-key').focus();
	return new Error(message);
}

async function getJson(path) {
	const response = await fetch(path, { headers: headers() });
	if (!response.ok) throw await failure(response);
	return response.json();
}

/** Plancks (a decimal string) as DLLM, trailing zeros cut. */
function dllm(plancks) {
	if (plancks === null || plancks === undefined) return '–';
	const { decimals, symbol } = state.token;
	const value = BigInt(plancks);
	const unit = 10n ** BigInt(decimals);
	const fraction = (value % unit).toString().padStart(decimals, '0').replace(/0+$/, '');
	return `${value / unit}${fraction ? '.' + fraction : ''} ${symbol}`;
}

const short = (address) => (address ? `${address.slice(0, 6)}…${address.slice(-4)}` : '–');

function element(tag, attributes = {}, ...children) {
	const node = document.createElement(tag);
	for (const [name, value] of Object.entries(attributes)) {
		if (name === 'class') node.className = value;
		else if (name === 'text') node.textContent = value;
		else node.setAttribute(name, value);
	}
	for (const child of children) node.append(child);
	return node;
}

function notice(text, isError = false) {
	$('notice').textContent = text;
	$('notice').className = isError ? 'error' : '';
}

async function loadModels() {
	const list = await getJson('/v1/models');
	const select = $('model');
	const chosen = select.value;
	select.replaceChildren(...list.data.map((m) => element('option', { value: m.id, text: m.id })));
	if (list.data.some((m) => m.id === chosen)) select.value = chosen;
	if (!list.data.length) notice('No active model on this chain yet.', true);
}

/** The `data` of one server-sent event's text (its `data:` lines joined). */
function dataOf(event) {
	return event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.replace(/^data: ?/, '')).join('\n');
}

/** Server-sent events from a fetch response: yields each event's `data`. */
async function* events(response) {
	const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
	let buffer = '';
	try {
		for (;;) {
			const { value, done } = await reader.read();
			if (done) break;
			buffer += value;
			let match;
			while ((match = /\r?\n\r?\n/.exec(buffer))) {
				const data = dataOf(buffer.slice(0, match.index));
				buffer = buffer.slice(match.index + match[0].length);
				if (data) yield data;
			}
		}
		const rest = dataOf(buffer);
		if (rest) yield rest;
	} finally {
		reader.cancel().catch(() => {});
	}
}

/** One answer bubble: its text, and a line with the task's state. */
function answerBubble() {
	const text = element('div', { class: 'text' });
	const meta = element('div', { class: 'meta' });
	const item = element('li', { class: 'assistant' }, text, meta);
	$('conversation').append(item);
	return { item, text, meta };
}

function showMeta(bubble, fields) {
	bubble.meta.replaceChildren(
		...fields.filter(Boolean).map(([label, value, cls]) =>
			element('span', { class: cls || label, 'data-field': label, text: value })),
	);
}

async function ask(prompt) {
	state.messages.push({ role: 'user', content: prompt });
	$('conversation').append(element('li', { class: 'user' }, element('div', { class: 'text', text: prompt })));
	const bubble = answerBubble();
	const started = performance.now();
	let task = null;
	let firstToken = null;
	const waiting = setInterval(() => {
		if (firstToken === null) {
			const seconds = ((performance.now() - started) / 1000).toFixed(0);
			showMeta(bubble, [task !== null && ['task', `task #${task}`], ['status', `waiting for miners… ${seconds} s`]]);
		}
	}, 500);
	try {
		const response = await fetch('/v1/chat/completions', {
			method: 'POST',
			headers: headers(),
			body: JSON.stringify({
				model: $('model').value,
				messages: state.messages,
				max_tokens: Number($('max-tokens').value),
				temperature: Number($('temperature').value),
				stream: true,
				stream_options: { include_usage: true },
			}),
		});
		if (!response.ok) throw await failure(response);
		let content = '';
		let usage = null;
		let settled = null;
		for await (const data of events(response)) {
			if (data === '[DONE]') break;
			const chunk = JSON.parse(data);
			if (chunk.error) throw new Error(chunk.error.message);
			const id = /-dllm-(\d+)$/.exec(chunk.id || '');
			if (id) task = id[1];
			const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
			if (delta && delta.content) {
				// Only text streamed before the verdict counts as the first token.
				if (firstToken === null && !chunk.dllm) firstToken = performance.now();
				content += delta.content;
				bubble.text.textContent = content;
				showMeta(bubble, [['task', `task #${task}`], ['status', 'streaming (not yet verified)']]);
			}
			if (chunk.dllm) {
				settled = chunk.dllm;
				if (settled.preview_matches === false) content = settled.content;
				bubble.text.textContent = content;
			}
			if (chunk.usage) usage = chunk.usage;
		}
		if (!settled) throw new Error('the stream ended without the chain\'s verdict');
		state.messages.push({ role: 'assistant', content });
		const seconds = (t) => `${((t - started) / 1000).toFixed(1)} s`;
		showMeta(bubble, [
			['task', `task #${settled.task}`],
			settled.verified ? ['status', 'verified', 'verified'] : ['status', settled.status, 'failed'],
			['fee', `fee ${dllm(settled.fee)}`],
			['refunded', `refunded ${dllm(settled.refunded)}`],
			usage && ['usage', `${usage.prompt_tokens} + ${usage.completion_tokens} tokens`],
			firstToken !== null && ['first-token', `first token ${seconds(firstToken)}`],
			['answered', `verified answer ${seconds(performance.now())}`],
		]);
		bubble.item.dataset.task = settled.task;
		bubble.item.dataset.verified = String(settled.verified);
		notice('');
	} catch (e) {
		state.messages.pop();
		// Whatever streamed was never verified: say so, and keep it out of the conversation.
		bubble.item.classList.add('unverified');
		bubble.text.textContent = bubble.text.textContent ? `${bubble.text.textContent}\n(unverified preview)` : '(no answer)';
		showMeta(bubble, [task !== null && ['task', `task #${task}`], ['error', e.message, 'error']]);
		notice(e.message, true);
	} finally {
		clearInterval(waiting);
	}
}

function renderNetwork(view) {
	state.token = view.token;
	$('block').textContent = `block #${view.block}`;
	$('net-models').replaceChildren(...view.models.map((m) => element('div', {},
		element('strong', { text: `${m.name} ` }),
		element('span', { text: `v${m.version} · ${m.layers} layers · ${m.status} ` }),
		element('div', {}, ...m.chunks.map((c) => element('span', {
			class: 'chunk',
			text: `chunk ${c.index} [${c.layers[0]}, ${c.layers[1]}): ${c.experts.length} expert${c.experts.length === 1 ? '' : 's'}`,
		}))))));
	$('net-experts').tBodies[0].replaceChildren(...view.experts.map((x) => element('tr', {},
		element('td', {}, element('code', { text: short(x.account), title: x.account })),
		element('td', { text: x.serving.map((s) => `${s.model}/${s.chunk}`).join(' ') }),
		element('td', { text: `${(x.reputation * 100).toFixed(1)} %` }),
		element('td', { text: dllm((BigInt(x.bond) + BigInt(x.delegated)).toString()) }),
		element('td', { text: dllm(x.price_per_token_layer) }),
		element('td', { text: `${x.active_tasks}/${x.max_concurrent_tasks}` }))));
	$('net-tasks').tBodies[0].replaceChildren(...view.tasks.map((t) => element('tr', { 'data-task': t.id },
		element('td', { text: `#${t.id}` }),
		element('td', { text: t.status }),
		element('td', { text: t.tokens === null ? '–' : String(t.tokens) }),
		element('td', { text: t.fee === null ? `≤ ${dllm(t.escrow)}` : dllm(t.fee) }),
		element('td', {}, element('code', { text: short(t.requester), title: t.requester })))));
}

async function refreshNetwork() {
	try {
		renderNetwork(await getJson('/dllm/network'));
	} catch (e) {
		$('block').textContent = `(network view: ${e.message})`;
	}
}

function start() {
	$('api-key').value = state.key;
	$('api-key').addEventListener('change', () => {
		state.key = $('api-key').value.trim();
		sessionStorage.setItem('dllm.apiKey', state.key);
		loadModels().catch((e) => notice(e.message, true));
		refreshNetwork();
	});
	$('settings').addEventListener('submit', (e) => e.preventDefault());
	$('new-chat').addEventListener('click', () => {
		state.messages = [];
		$('conversation').replaceChildren();
	});
	$('prompt').addEventListener('keydown', (e) => {
		if (e.key === 'Enter' && !e.shiftKey) {
			e.preventDefault();
			$('ask').requestSubmit();
		}
	});
	$('ask').addEventListener('submit', async (e) => {
		e.preventDefault();
		const prompt = $('prompt').value.trim();
		if (!prompt || state.busy) return;
		state.busy = true;
		$('send').disabled = true;
		$('new-chat').disabled = true;
		$('prompt').value = '';
		try {
			await ask(prompt);
		} finally {
			state.busy = false;
			$('send').disabled = false;
			$('new-chat').disabled = false;
			refreshNetwork();
		}
	});
	loadModels().catch((e) => notice(e.message, true));
	refreshNetwork();
	setInterval(refreshNetwork, 6000);
}

start();
