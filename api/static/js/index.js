import { start } from "/static/js/common.js";

start();
