from bot.cli import main

if __name__ == "__main__":  # not when a spawned worker process (bot.otlp.pool) imports it
    main()
