from rbiqa.generate.stage import main

if __name__ == "__main__":
    main()
