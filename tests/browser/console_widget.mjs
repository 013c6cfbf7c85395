// End-to-end check of the customer web chat (/widget) and the agent console (/console) in a real
// Chromium, driven with playwright-core:
//
//   a customer writes, picks "Vendas" in the triage menu and waits in the queue; an agent signs
//   in to the console, sees the conversation waiting in vendas, becomes available, accepts it and
//   replies; the customer sees the reply.
//
// Usage: node tests/browser/console_widget.mjs <hub url> <agent token> <artifact dir>
// Env: PLAYWRIGHT_CORE_DIR (the installed playwright-core package, from tests/interop/setup.sh),
//      CHROMIUM (default /usr/bin/chromium).
// Writes widget.png and console.png into the artifact dir (plus *-failure.png on failure) and
// exits non-zero with the failed step on stderr.

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const STEP_TIMEOUT_MS = 20_000;
const CUSTOMER_TEXT = 'Oi, quero comprar um tênis';
const AGENT_REPLY = 'Olá! Aqui é a Ana, posso ajudar?';

function die(message) {
  console.error(`console_widget: ${message}`);
  process.exit(2);
}

const [base, token, artifactArg] = process.argv.slice(2);
if (!base || !token || !artifactArg) die('usage: console_widget.mjs <hub url> <agent token> <artifact dir>');
const artifacts = path.resolve(artifactArg);
mkdirSync(artifacts, { recursive: true });
const playwrightDir = process.env.PLAYWRIGHT_CORE_DIR;
if (!playwrightDir) die('PLAYWRIGHT_CORE_DIR is not set: run tests/interop/setup.sh and source .cache/interop/env.sh');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// playwright-core lives in .cache/interop, not next to this script: load it by path.
const { chromium } = createRequire(import.meta.url)(playwrightDir);

/** What each page did, for the failure report: page errors, console errors, WebSocket frames. */
function watch(page, name, log) {
  page.on('pageerror', (err) => log.errors.push(`${name}: uncaught ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') log.console.push(`${name} console.${msg.type()}: ${msg.text()}`);
  });
  page.on('websocket', (ws) => {
    const keep = (dir) => (frame) => {
      log.frames.push(`${name} ${dir} ${String(frame.payload).slice(0, 600)}`);
      if (log.frames.length > 200) log.frames.shift();
    };
    ws.on('framesent', keep('>>'));
    ws.on('framereceived', keep('<<'));
    ws.on('close', () => log.frames.push(`${name} websocket closed (${ws.url().replace(/token=[^&]*/, 'token=…')})`));
  });
}

async function main() {
  const log = { errors: [], console: [], frames: [] };
  const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
  let current = 'start';
  const step = async (name, fn) => {
    current = name;
    const started = Date.now();
    const value = await fn();
    if (log.errors.length > 0) throw new Error(`page error: ${log.errors.join('; ')}`);
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
    return value;
  };
  const customerContext = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'pt-BR' });
  const agentContext = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US' });
  const widget = await customerContext.newPage();
  const agent = await agentContext.newPage();
  for (const page of [widget, agent]) page.setDefaultTimeout(STEP_TIMEOUT_MS);
  watch(widget, 'widget', log);
  watch(agent, 'console', log);

  try {
    // --- The customer ---------------------------------------------------------------------
    const conversationId = await step('customer opens the web chat and gets a conversation', async () => {
      await widget.goto(`${base}/widget?tenant=demo`);
      const root = widget.locator('[data-testid="widget"][data-state="open"][data-conversation-id]');
      await root.waitFor({ state: 'visible' });
      return root.getAttribute('data-conversation-id');
    });

    await step(`customer writes "${CUSTOMER_TEXT}" and the hub acknowledges it`, async () => {
      await widget.getByTestId('widget-input').fill(CUSTOMER_TEXT);
      await widget.getByTestId('widget-send').click();
      await widget
        .locator('[data-testid="widget-message"][data-from="customer"][data-status="sent"]', { hasText: CUSTOMER_TEXT })
        .waitFor();
    });

    await step('customer gets the triage menu and taps "Vendas"', async () => {
      const option = widget.getByTestId('option-button').filter({ hasText: /^Vendas$/ });
      await option.last().waitFor();
      await option.last().click();
      await widget
        .locator('[data-testid="widget-message"][data-from="customer"][data-status="sent"]', { hasText: 'Vendas' })
        .waitFor();
    });

    await step('customer sees the queue notice for vendas', async () => {
      await widget.locator('[data-testid="widget-message"][data-from="business"]', { hasText: 'fila de vendas' }).waitFor();
    });

    // --- The agent ------------------------------------------------------------------------
    await step('agent signs in to the console', async () => {
      await agent.goto(`${base}/console`);
      await agent.getByTestId('login-token').fill(token);
      await agent.getByTestId('login-button').click();
      // Whichever comes first: the console goes live, or the sign-in is refused.
      await agent
        .locator('[data-testid="connection-state"][data-state="open"]:visible, [data-testid="login-error"]:visible')
        .first()
        .waitFor();
      const refused = agent.getByTestId('login-error');
      if (await refused.isVisible()) throw new Error(`sign-in refused: ${await refused.textContent()}`);
    });

    const item = agent.locator(
      `[data-testid="conversation-item"][data-conversation-id="${conversationId}"]`,
    );
    await step(`agent sees ${conversationId} waiting in vendas`, async () => {
      await agent.getByTestId('tab-waiting').click();
      await agent
        .locator(`[data-testid="conversation-item"][data-conversation-id="${conversationId}"][data-status="queued"][data-queue="vendas"]`)
        .waitFor();
    });

    await step('agent becomes available', async () => {
      const toggle = agent.getByTestId('availability-toggle');
      await toggle.check();
      await agent.locator('[data-testid="availability-toggle"][aria-checked="true"]').waitFor({ state: 'attached' });
    });

    await step('agent opens the conversation and accepts it', async () => {
      await item.click();
      await agent.getByTestId('accept-button').click();
      await agent.locator('[data-testid="chat-status"][data-status="assigned"]').waitFor();
      await agent.getByTestId('accept-button').waitFor({ state: 'hidden' });
      await agent.getByTestId('tab-mine').click();
      await agent.locator(`[data-testid="conversation-item"][data-conversation-id="${conversationId}"][data-status="assigned"]`).waitFor();
    });

    await step('agent sees the history (the customer message and the choice)', async () => {
      const list = agent.getByTestId('message-list');
      await list.locator('[data-testid="message-bubble"][data-role="customer"]', { hasText: CUSTOMER_TEXT }).waitFor();
    });

    await step(`agent replies "${AGENT_REPLY}"`, async () => {
      const input = agent.getByTestId('reply-input');
      await input.fill(AGENT_REPLY);
      await input.press('Enter');
      // The bubble of the outbound.message.queued event (not the pending one).
      await agent
        .locator('[data-testid="message-bubble"][data-role="agent"][data-key^="out:"]', { hasText: AGENT_REPLY })
        .waitFor();
    });

    await step('customer sees the agent greeting and the reply', async () => {
      const business = widget.locator('[data-testid="widget-message"][data-from="business"]');
      await business.filter({ hasText: AGENT_REPLY }).waitFor();
    });

    await step('screenshots', async () => {
      // Let typing indicators and ticks settle so the pictures show the steady state.
      await agent.waitForTimeout(500);
      await widget.screenshot({ path: path.join(artifacts, 'widget.png') });
      await agent.screenshot({ path: path.join(artifacts, 'console.png') });
    });
    console.log(`screenshot ${path.join(artifacts, 'widget.png')}`);
    console.log(`screenshot ${path.join(artifacts, 'console.png')}`);
    console.log('console_widget ok');
  } catch (err) {
    console.error(`FAILED at step "${current}": ${err.message.split('\n')[0]}`);
    console.error(err.message);
    await widget.screenshot({ path: path.join(artifacts, 'widget-failure.png') }).catch(() => {});
    await agent.screenshot({ path: path.join(artifacts, 'console-failure.png') }).catch(() => {});
    console.error(`failure screenshots in ${artifacts} (widget-failure.png, console-failure.png)`);
    for (const line of [...log.errors, ...log.console]) console.error(line);
    console.error('--- last WebSocket frames ---');
    for (const line of log.frames.slice(-60)) console.error(line);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(`console_widget: ${err.stack || err}`);
  process.exit(1);
});
